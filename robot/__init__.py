"""Robots and cameras: WidowX (Interbotix), MuJoCo WidowX, MetaWorld, dm_control, RealSense, fakes.

numpy only at import time; every optional SDK is imported inside the backend that needs it.
"""

from clamkit.robot.base import Camera, DeviceNotConnectedError, Frame, Policy, Robot

__all__ = ["Camera", "DeviceNotConnectedError", "Frame", "Policy", "Robot"]
