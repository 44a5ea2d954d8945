"""Rehearse a real deployment without hardware: the real drivers (clamkit.robot.widowx through
Interbotix's API, clamkit.robot.realsense through pyrealsense2) driven by MuJoCo physics in real time.

    clam-run BUNDLE --robot widowx --camera realsense --emulate --episodes 3

Not production driver code: nothing here runs on a real robot. The pieces:
- world.py       our MuJoCo WidowX 250s scene in a real-time thread, with xs_sdk servo behaviour and faults
- interbotix.py  interbotix_xs_modules (ROS 1 and ROS 2 layouts), installed into sys.modules
- realsense.py   a D435 made of pyrealsense2's software_device, installed as pyrealsense2

EmulatedWidowXRobot is the real WidowXRobot plus what a person does at a real arm: it sets the scene
before each episode (the block where widowx-sim's reset(seed) puts it) and judges success (the
simulator's criterion), so a bundle's success rate here is comparable with `--robot widowx-sim`.
"""

from __future__ import annotations

import logging

import numpy as np
from clamkit.robot.config_widowx import WidowXConfig
from clamkit.robot.widowx import WidowXRobot

from clamkit.errors import UserError

log = logging.getLogger(__name__)


class EmulatedWidowXRobot(WidowXRobot):
    """WidowXRobot on the emulated xs_sdk + RealSense (installed on connect, removed on disconnect).

    task / max_steps: the widowx-sim task the scene is set up for and the episode length (ticks).
    camera_serial: the emulated RealSense's serial. latency: joint-state delivery delay (s).
    servo_kp: override the arm servos' stiffness (default: widowx-sim's, widowx_common.servo_gains; to tell
    differences from the drivers apart from differences in arm dynamics).
    """

    def __init__(self, config: WidowXConfig | None = None, *, task: str = "reach-block", max_steps: int = 50,
                 camera_serial: str | None = None, latency: float = 0.008, servo_kp: float | None = None,
                 **overrides):
        super().__init__(config, **overrides)
        from clamkit.robot.emulate.realsense import SERIAL
        from clamkit.robot.emulate.world import EmulatedWorld

        self.world = EmulatedWorld(task=task, max_steps=max_steps, latency=latency, servo_kp=servo_kp)
        self.task, self.max_steps = task, int(max_steps)
        self.camera_serial = str(camera_serial) if camera_serial else SERIAL
        self.camera = None  # the EmulatedRealSense, once connected
        self._restore: list = []
        self._skipped0 = 0.0  # world.skipped at the episode's reset

    def connect(self) -> None:
        if self.is_connected:
            return
        from clamkit.robot.emulate import interbotix

        self.world.start()
        ros = "ros2" if self.config.ros == "auto" else self.config.ros
        self._restore.append(interbotix.install(self.world, ros))
        try:
            self._install_camera()
            super().connect()
        except BaseException:
            self._uninstall()
            raise
        log.warning("EMULATED WidowX (%s layout) and RealSense %s: MuJoCo physics, nothing real moves", ros,
                    self.camera_serial)

    def _install_camera(self) -> None:
        from clamkit.robot.emulate.realsense import EmulatedRealSense

        from clamkit.errors import MissingDependency

        try:
            self.camera = EmulatedRealSense(self.world, serial=self.camera_serial)
        except MissingDependency as e:  # a state-only rehearsal works without pyrealsense2
            log.info("no emulated RealSense: %s", e)
            return
        self._restore.append(self.camera.install())

    def _uninstall(self) -> None:
        while self._restore:
            self._restore.pop()()
        self.world.stop()

    def disconnect(self) -> None:
        try:
            super().disconnect()
        finally:
            self._uninstall()

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Set the scene from the seed (a person placing the block), then the driver's own reset (home, open)."""
        self._require()
        self.world.place_objects(seed)
        obs = super().reset(seed)
        self.world.success = False  # what happened while homing does not count
        self._skipped0 = self.world.skipped
        return obs

    def episode_info(self) -> dict:
        # physics_skipped_s > 0: the machine stalled the real-time physics thread during the episode, so the
        # arm jumped rather than moved there (a loaded host, not the driver): such episodes say little.
        skipped = self.world.skipped - self._skipped0
        return super().episode_info() | {"success": bool(self.world.success), "physics_skipped_s": round(skipped, 4)}

    def episode_done(self) -> bool:
        return self.episode_info()["ticks"] >= self.max_steps

    def render(self, width: int, height: int) -> np.ndarray:
        """The scene camera (for --camera sim on the emulated arm)."""
        if not self.world.running:
            raise UserError("the emulated WidowX is not connected")
        with self.world.lock:  # the physics thread steps the same MjData
            return self.world.sim.render(width, height)
