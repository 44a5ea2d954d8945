"""Robots and cameras: WidowX (Interbotix), MuJoCo WidowX, MetaWorld, dm_control, RealSense, fakes.

numpy only at import time; every optional SDK is imported inside the backend that needs it.
"""

import os

# Headless rendering (EGL) unless the user chose a GL backend (DESIGN §2). The one place this is set:
# mujoco, dm_control and metaworld are imported only by modules of this package, so this runs first.
os.environ.setdefault("MUJOCO_GL", "egl")

from clamkit.robot.base import Camera, DeviceNotConnectedError, Frame, Robot

__all__ = ["Camera", "DeviceNotConnectedError", "Frame", "Robot"]
