"""The `sim` camera: frames rendered by a simulated robot, the way a fixed RealSense would see them.

A robot that models a real camera names its capture size (`capture_size`, e.g. widowx-sim's D435 at
640x480): frames are then rendered at that size and centre-cropped and area-resized by the very code the
RealSense backend runs, so training frames match deployment frames pixel statistics and all (rendering
64x64 directly aliases where the camera's resize averages)."""

from __future__ import annotations

import time

from clamkit.imageops import camera_view
from clamkit.robot.base import Camera, Frame, Robot
from clamkit.specs import ArraySpec


class SimCamera(Camera):
    name = "sim"

    def __init__(self, robot: Robot, width: int = 64, height: int = 64):
        self.robot, self.width, self.height = robot, int(width), int(height)
        cap = getattr(robot, "capture_size", None)  # (width, height) of the real camera it stands for
        self.capture = cap if cap and cap[0] >= self.width and cap[1] >= self.height else None
        self._connected, self._index = False, 0

    @property
    def spec(self) -> ArraySpec:
        return ArraySpec((self.height, self.width, 3), "uint8")

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._render()  # warm-up: the renderer's set-up is not a frame's cost
        self._connected = True

    def _render(self):
        if self.capture is None:
            return self.robot.render(self.width, self.height)
        return camera_view(self.robot.render(*self.capture), self.height, self.width)  # rendered as captured

    def read(self) -> Frame:
        image = self._render()
        self._index += 1
        return Frame(image=image, timestamp=time.monotonic(), index=self._index)

    def disconnect(self) -> None:
        self._connected = False
