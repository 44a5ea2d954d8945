"""Robots and cameras: WidowX (Interbotix), MuJoCo WidowX, MetaWorld, dm_control, RealSense, fakes.

numpy only at import time; every optional SDK is imported inside the backend that needs it.
"""

import os

# Headless rendering (EGL) unless the user chose a GL backend or has a display. Must be set before
# mujoco is first imported, which any simulator backend may do.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

from clamkit.robot.base import Camera, DeviceNotConnectedError, Frame, Robot

__all__ = ["Camera", "DeviceNotConnectedError", "Frame", "Robot"]
