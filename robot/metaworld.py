"""MetaWorld (v3, Sawyer) as a Robot. Its scripted experts and play policy are in clamkit.record.metaworld.

Facts this relies on (DESIGN §2, measured with metaworld 3.1.1 / mujoco 3.3.0): goal-observable
envs freeze their random task vector after construction unless `_freeze_rand_vec` is cleared and
`env.seed(s)` is called before each reset; stepping past max_path_length raises; scripted experts
emit actions outside [-1, 1] (we clip and record the clipped action); the `corner` camera renders
upside down.
"""

from __future__ import annotations

import numpy as np

from clamkit.errors import UserError, require
from clamkit.robot.base import DeviceNotConnectedError, Robot
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

# Observation layout: 0-2 hand xyz, 3 gripper, 4-17 two objects, 18-35 previous step's 0-17, 36-38 goal.
HAND, GOAL = slice(0, 3), slice(36, 39)
ACTION_SPEC = ActionSpec(dim=4, low=(-1,) * 4, high=(1,) * 4, semantics="metaworld:xyz+gripper")
FPS = 80.0  # frame_skip 5 x timestep 2.5 ms


def import_metaworld():
    require("packaging", "sim")  # an undeclared need of metaworld
    return require("metaworld", "sim")


def task_names() -> list[str]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return sorted(ALL_V3_ENVIRONMENTS)


class MetaWorldRobot(Robot):
    """One MetaWorld task; reset(seed) samples that seed's object and goal positions."""

    fps = FPS

    def __init__(self, task: str = "reach-v3", max_steps: int = 500):
        self.task, self.max_steps = task, int(max_steps)
        self.name = f"metaworld:{task}"
        self._env, self._renderer, self._obs = None, None, None
        self._success, self._steps = False, 0

    @property
    def observation_spec(self) -> ObservationSpec:
        return ObservationSpec({"state": ArraySpec((39,), "float32")})

    @property
    def action_spec(self) -> ActionSpec:
        return ACTION_SPEC

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self) -> None:
        import_metaworld()
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as envs

        key = f"{self.task}-goal-observable"
        if key not in envs:
            raise UserError(f"unknown MetaWorld task '{self.task}' (e.g. reach-v3, button-press-v3, pick-place-v3)")
        env = envs[key](seed=0)
        env._freeze_rand_vec, env.seeded_rand_vec = False, True
        env.max_path_length = max(env.max_path_length, self.max_steps)
        # Shadows and MSAA off before the first render: 64x64 goes from ~16 ms to ~3 ms.
        env.model.vis.quality.shadowsize = 0
        env.model.vis.quality.offsamples = 0
        self._env = env

    def disconnect(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        if self._env is not None:
            self._env.close()
        self._env = self._renderer = None

    def _require(self):
        if self._env is None:
            raise DeviceNotConnectedError(f"{self.name} is not connected")
        return self._env

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        env = self._require()
        if seed is not None:
            env.seed(int(seed))  # reset(seed=...) ignores its seed in metaworld 3.1.1
        obs, _ = env.reset()
        self._obs, self._success, self._steps = obs.astype(np.float32), False, 0
        return self.get_observation()

    def get_observation(self) -> dict[str, np.ndarray]:
        self._require()
        return {"state": self._obs.copy()}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        env = self._require()
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        if self._steps >= env.max_path_length:
            return a  # past the limit metaworld raises; the episode is over
        obs, _, _, _, info = env.step(a)
        self._obs, self._steps = obs.astype(np.float32), self._steps + 1
        self._success |= bool(info.get("success", 0.0))
        return a

    def episode_info(self) -> dict:
        return {"success": self._success}

    def episode_done(self) -> bool:
        return self._steps >= min(self.max_steps, self._env.max_path_length)

    def render(self, width: int, height: int) -> np.ndarray:
        import mujoco

        env = self._require()
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(env.model, height, width)
        self._renderer.update_scene(env.data, camera="corner")
        return np.ascontiguousarray(self._renderer.render()[::-1, ::-1])  # corner camera is upside down
