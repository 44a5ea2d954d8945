"""Subscribers: objects the control loop notifies per run, episode and tick (recording, video,
progress). The loop knows only this interface; recording a deployment is one subscriber."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from clamkit.dataset import DatasetWriter
from clamkit.imageops import resize_area
from clamkit.robot.base import Camera, Frame, Robot
from clamkit.runtime.observation import provided_spec

log = logging.getLogger(__name__)


class Subscriber:
    """Sees every tick of every episode. All methods are optional."""

    def on_run_start(self, robot: Robot, camera: Camera | None, fps: float, info: dict) -> None:
        """Devices connected and specs checked, nothing moved yet. fps: the loop's rate (or the data's);
        info: the run's report header (robot, camera, backend, dry_run, seed, and the caller's extras)."""

    def on_episode_start(self, episode: int, seed: int) -> None: ...

    def on_step(self, obs: dict[str, np.ndarray], frame: Frame | None, action: np.ndarray | None) -> None:
        """obs/frame the policy saw at t and the action actually sent at t (None in a dry run)."""

    def on_episode_end(self, obs: dict[str, np.ndarray] | None, frame: Frame | None, info: dict) -> None:
        """The final observation o_T (None when it could not be read after a fault) and the outcome."""

    def close(self) -> None: ...


class Recorder(Subscriber):
    """Writes each episode into a clamkit dataset (deployments become training data): the robot's
    observation keys, the camera frame as "image" (camera resolution), and the sent actions.
    Dry runs are recorded unlabelled (no action reached the robot). The dataset is opened at
    on_run_start, once the devices are connected (some robots know their specs only then).

        run_loop(robot, backend, camera, LoopOptions(hz=5), subscribers=[Recorder("data/deploy")])
    """

    def __init__(self, root: str | Path, info: dict | None = None):
        self.root, self.info = Path(root), dict(info or {})
        self.writer: DatasetWriter | None = None
        self.keys: list[str] = []
        self.image_hw = None
        self.written = 0
        self._reset()

    def on_run_start(self, robot, camera, fps, info):
        spec = provided_spec(robot, camera)
        self.image_hw = tuple(camera.spec.shape[:2]) if camera is not None else None
        header = {"source": "clam-run", "bundle": info.get("bundle"), "backend": info.get("backend"),
                  "dry_run": info.get("dry_run", False)} | self.info
        self.writer = DatasetWriter(self.root, observation=spec, action=robot.action_spec, fps=fps, robot=robot.name,
                                    task=getattr(robot, "task", "") or "", info=header)
        self.keys = list(spec.keys)
        self._reset()

    def _reset(self):
        self._obs: dict[str, list] = {k: [] for k in self.keys}
        self._actions: list[np.ndarray] = []
        self._labelled, self._seed = True, None

    def _append(self, obs, frame):
        for k in self.keys:
            if k == "image" and self.image_hw is not None:
                self._obs[k].append(resize_area(frame.image, *self.image_hw) if frame is not None else self._obs[k][-1])
            else:
                self._obs[k].append(np.array(obs[k]))

    def on_episode_start(self, episode, seed):
        self._reset()
        self._seed = seed

    def on_step(self, obs, frame, action):
        self._append(obs, frame)
        if action is None:
            self._labelled = False
        else:
            self._actions.append(np.asarray(action, np.float32))

    def on_episode_end(self, obs, frame, info):
        n = len(self._obs[self.keys[0]]) if self.keys else 0
        if obs is not None and n:
            self._append(obs, frame)
            n += 1
        elif self._labelled and len(self._actions) == n and n:
            # No o_T after the last action (a fault): drop that action so actions stay between observations.
            self._actions.pop()
        if n < 2:
            log.warning("episode %s: only %d observation(s); not recorded", self._seed, n)
            return
        arrays = {k: np.stack(v) for k, v in self._obs.items()}  # (T, *shape)
        actions = np.stack(self._actions[: n - 1]) if self._labelled and self._actions else None
        info = {k: v for k, v in info.items() if k != "seed" and isinstance(v, (bool, int, float, str, np.generic))}
        self.writer.add_episode(arrays, actions, seed=self._seed, **info)
        self.written += 1
        self._reset()
