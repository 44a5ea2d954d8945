"""The `sim` camera: frames rendered by a simulated robot, the way a fixed RealSense would see them."""

from __future__ import annotations

import time

from clamkit.robot.base import Camera, Frame, Robot
from clamkit.specs import ArraySpec


class SimCamera(Camera):
    name = "sim"

    def __init__(self, robot: Robot, width: int = 64, height: int = 64):
        self.robot, self.width, self.height = robot, int(width), int(height)
        self._connected, self._index = False, 0

    @property
    def spec(self) -> ArraySpec:
        return ArraySpec((self.height, self.width, 3), "uint8")

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self.robot.render(self.width, self.height)  # warm-up: the renderer's set-up is not a frame's cost
        self._connected = True

    def read(self) -> Frame:
        image = self.robot.render(self.width, self.height)
        self._index += 1
        return Frame(image=image, timestamp=time.monotonic(), index=self._index)

    def disconnect(self) -> None:
        self._connected = False
