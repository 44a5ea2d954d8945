"""dm_control suite tasks as a Robot (the scripted experts and play policy are in clamkit.record.dmc).

Facts this relies on (dm-control 1.0.28 / mujoco 3.3.0): every suite task draws its initial
state from `env.task.random`, a numpy RandomState, so re-seeding it in place before `reset()`
gives the same episode as a freshly loaded env with `task_kwargs={"random": seed}` (a test
checks this) without reloading the model or losing the render context. The benchmark tasks'
time limit is 1000 control steps with a per-step reward in [0, 1]: returns lie in [0, 1000].
"""

from __future__ import annotations

import logging

import numpy as np

from clamkit.errors import UserError, require
from clamkit.robot.base import DeviceNotConnectedError, Robot
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

log = logging.getLogger(__name__)

TASKS = ("reacher-easy", "point_mass-easy", "cartpole-swingup", "pendulum-swingup")
EXAMPLES = "e.g. " + ", ".join(TASKS)


def split_task(task: str) -> tuple[str, str]:
    """'point_mass-easy' -> ('point_mass', 'easy'): the first '-' splits domain from task."""
    domain, sep, name = task.partition("-")
    if not sep or not domain or not name:
        raise UserError(f"dm_control task '{task}' must be DOMAIN-TASK ({EXAMPLES})")
    return domain, name


# ----------------------------------------------------------------------------- robot


class DMCRobot(Robot):
    """One dm_control suite task. reset(seed) gives that seed's initial state; the observation is
    {"state": the task's observation dict flattened in sorted key order, float32}. The specs and
    fps come from the environment, so they are known once connect() has run."""

    def __init__(self, task: str = "reacher-easy", max_steps: int = 1000):
        self.domain, self.task = split_task(task)
        self.max_steps = int(max_steps)
        self.name = f"dmc:{self.domain}-{self.task}"
        self._env, self._time_step = None, None
        self._layout, self._action_spec, self._fps = {}, None, None
        self._return, self._steps = 0.0, 0

    # -- specs: read from the environment on connect(), kept after disconnect()

    @property
    def observation_spec(self) -> ObservationSpec:
        dim = self._known(self._layout and max(s.stop for s in self._layout.values()))
        return ObservationSpec({"state": ArraySpec((dim,), "float32")})

    @property
    def action_spec(self) -> ActionSpec:
        return self._known(self._action_spec)

    @property
    def observation_layout(self) -> dict[str, slice]:
        """Where each key of the task's observation dict sits in obs["state"]."""
        return dict(self._known(self._layout))

    @property
    def fps(self) -> float:
        return self._known(self._fps)

    def _known(self, value):
        if not value:
            raise DeviceNotConnectedError(f"{self.name}: connect() first; the specs come from the environment")
        return value

    # -- lifecycle

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self) -> None:
        suite = require("dm_control.suite", "sim")
        if (self.domain, self.task) not in suite.ALL_TASKS:
            raise UserError(f"unknown dm_control task '{self.domain}-{self.task}' ({EXAMPLES})")
        env = suite.load(self.domain, self.task)
        # Shadows and MSAA off before the first render: small frames render ~5x faster.
        env.physics.model.vis.quality.shadowsize = 0
        env.physics.model.vis.quality.offsamples = 0
        offset, layout = 0, {}
        for key, spec in sorted(env.observation_spec().items()):
            size = int(np.prod(spec.shape, dtype=int))
            layout[key] = slice(offset, offset + size)
            offset += size
        spec = env.action_spec()
        self._action_spec = ActionSpec(dim=spec.shape[0], low=spec.minimum, high=spec.maximum, semantics=self.name)
        self._env, self._layout, self._fps = env, layout, 1.0 / env.control_timestep()
        log.debug("%s: observation layout %s, %.0f Hz", self.name, layout, self._fps)

    def disconnect(self) -> None:
        if self._env is not None:
            self._env.close()  # frees the physics' GL contexts; EGL complains at exit otherwise
        self._env, self._time_step = None, None

    def _require(self):
        if self._env is None:
            raise DeviceNotConnectedError(f"{self.name} is not connected; call connect() first")
        return self._env

    # -- episode

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        env = self._require()
        if seed is not None:
            env.task.random.seed(int(seed))  # same draws as suite.load(..., task_kwargs={"random": seed})
        self._time_step = env.reset()
        self._return, self._steps = 0.0, 0
        return self.get_observation()

    def get_observation(self) -> dict[str, np.ndarray]:
        self._require()
        if self._time_step is None:
            raise DeviceNotConnectedError(f"{self.name}: call reset() before get_observation()")
        obs = self._time_step.observation
        state = np.concatenate([np.asarray(obs[k], dtype=np.float64).ravel() for k in self._layout])
        return {"state": state.astype(np.float32)}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        env, spec = self._require(), self._action_spec
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(spec.dim), spec.low, spec.high)
        if self.episode_done():
            return a.astype(np.float32)  # stepping a finished env would silently start a new episode
        self._time_step = env.step(a)
        self._return += float(self._time_step.reward or 0.0)
        self._steps += 1
        return a.astype(np.float32)

    def episode_info(self) -> dict:
        return {"return": self._return}

    def episode_done(self) -> bool:
        if self._time_step is None:
            return False
        return self._time_step.last() or self._steps >= self.max_steps

    def render(self, width: int, height: int) -> np.ndarray:
        env = self._require()
        return np.ascontiguousarray(env.physics.render(height=int(height), width=int(width), camera_id=0))
