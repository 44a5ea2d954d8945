"""What the policy sees: robot observation + camera frame -> the bundle graph's raw inputs, and the
spec check that runs before anything moves (SpecMismatch)."""

from __future__ import annotations

import numpy as np

from clamkit.imageops import resize_area
from clamkit.robot.base import Camera, Frame, Robot
from clamkit.specs import ObservationSpec, check_compatible


class ObservationBuilder:
    """Robot observation + camera frame -> the dict of raw inputs the bundle's graph takes. A frame of
    another size is area-resized to the bundle's image size (squashed, no crop: a RealSense camera
    crops itself); a frame already at that size is passed on untouched."""

    def __init__(self, spec: ObservationSpec, inputs: list[str]):
        self.inputs = list(inputs)
        self.specs = {k: spec.keys[k] for k in self.inputs}
        self.image_hw = tuple(spec.keys["image"].shape[:2]) if "image" in spec.keys else None

    def __call__(self, obs: dict[str, np.ndarray], frame: Frame | None) -> dict[str, np.ndarray]:
        out = {}
        for key in self.inputs:
            if key == "image":
                img = frame.image if frame is not None else obs["image"]
                out[key] = resize_area(img, *self.image_hw)  # (H, W, 3) uint8
            else:
                out[key] = np.asarray(obs[key], dtype=self.specs[key].dtype)
        return out


def provided_spec(robot: Robot, camera: Camera | None) -> ObservationSpec:
    """What robot + camera deliver: the robot's keys plus "image" from the camera."""
    keys = dict(robot.observation_spec.keys)
    if camera is not None:
        keys["image"] = camera.spec
    return ObservationSpec(keys)


def check_setup(meta, robot: Robot, camera: Camera | None) -> None:
    """SpecMismatch (one line) unless robot + camera can serve the bundle."""
    check_compatible(f"robot '{robot.name}'" + (f" + camera '{camera.name}'" if camera else ""),
                     meta.observation, provided_spec(robot, camera))
    check_compatible(f"robot '{robot.name}'", meta.action, robot.action_spec)
