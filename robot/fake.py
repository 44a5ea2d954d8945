"""Fake hardware for tests and dry runs: a numpy point-mass `FakeRobot` and a synthetic `FakeCamera`.

    with FakeRobot(dim=2) as robot:             # state = [position (2), goal (2)]
        obs = robot.reset(seed=0)
        robot.send_action(np.clip(5 * (obs["state"][2:] - obs["state"][:2]), -1, 1))

The point mass moves by `gain * action` per step (a position-delta action), so a policy that
steers towards the goal succeeds within a few steps. Options make it fail on purpose (raise in
send_action / get_observation at a given step) so the runtime's fault handling can be tested, and
`semantics="ee_delta_xyz_rpy+gripper"` (7-D actions, dim 3) makes it look like a WidowX for the
safety layer: it then has `ee_pose()` and a `workspace` box.

Every call that matters is counted (`sent`, `go_safe_calls`, `resets`, ...) so tests can assert
on what reached the "hardware". numpy only.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from clamkit.robot.base import Camera, DeviceNotConnectedError, EpisodeFault, Frame, Robot
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

log = logging.getLogger(__name__)

EE_SEMANTICS = "ee_delta_xyz_rpy+gripper"


class FakeFault(RuntimeError):
    """The failure a FakeRobot/FakeCamera was told to produce."""


class FakeEpisodeFault(FakeFault, EpisodeFault):
    """The same, as a fault that ends only its episode (FakeRobot(episode_fault=True)), like the WidowX effort guard."""


class FakeRobot(Robot):
    """A point mass in `dim` dimensions that moves `gain * action[:dim]` per step.

    Observation {"state": [position, goal]} (2*dim floats, float32), or no state at all with
    `state=False` (a pixel-only setup; the camera must then carry everything). Success: the
    position came within `tol` of the goal at some step. `return` is the negative summed distance.
    """

    def __init__(self, dim: int = 2, *, action_dim: int | None = None, semantics: str = "fake:delta_pos",
                 low=None, high=None, gain: float = 0.1, tol: float = 0.05,
                 max_steps: int = 50, state: bool = True, fps: float = 50.0,
                 fail_at: int | None = None, fail_in: str = "send_action", episode_fault: bool = False,
                 workspace: tuple | None = None, name: str = "fake"):
        if semantics == EE_SEMANTICS:
            dim, action_dim = 3, 7
            workspace = workspace if workspace is not None else ((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))
            low = (-1.0,) * 6 + (0.0,) if low is None else low  # gripper: 0 = closed, 1 = open
            high = (1.0,) * 6 + (1.0,) if high is None else high
            self.ee_delta_scale = float(gain)  # metres per action unit, for the safety layer's workspace clamp
        self.dim = int(dim)
        self.action_dim = int(action_dim if action_dim is not None else dim)
        if self.action_dim < self.dim:
            raise ValueError(f"action_dim {self.action_dim} < dim {self.dim}")
        if fail_in not in ("send_action", "get_observation"):
            raise ValueError(f"fail_in must be send_action or get_observation, not {fail_in!r}")
        self.semantics = semantics
        self.low = np.broadcast_to(np.asarray(-1.0 if low is None else low, np.float64), (self.action_dim,)).copy()
        self.high = np.broadcast_to(np.asarray(1.0 if high is None else high, np.float64), (self.action_dim,)).copy()
        self.gain, self.tol, self.max_steps, self.has_state = float(gain), float(tol), int(max_steps), bool(state)
        self.fps, self.fail_at, self.fail_in, self.name = float(fps), fail_at, fail_in, name
        self.episode_fault = bool(episode_fault)  # the injected fault is a FakeEpisodeFault (ends only its episode)
        self.workspace = None if workspace is None else np.asarray(workspace, dtype=np.float64).reshape(2, self.dim)
        self._connected = False
        self.pos, self.goal = np.zeros(self.dim), np.zeros(self.dim)
        self._steps, self._success, self._return = 0, False, 0.0
        # What reached the "hardware" (tests assert on these).
        self.sent: list[np.ndarray] = []
        self.resets: list[int | None] = []
        self.go_safe_calls = 0
        self.connect_calls = self.disconnect_calls = 0
        self.observations = 0

    # -- specs

    @property
    def observation_spec(self) -> ObservationSpec:
        return ObservationSpec({"state": ArraySpec((2 * self.dim,), "float32")} if self.has_state else {})

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec(self.action_dim, tuple(self.low), tuple(self.high), self.semantics)

    # -- lifecycle

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True
        self.connect_calls += 1

    def disconnect(self) -> None:
        self._connected = False
        self.disconnect_calls += 1

    def _require(self):
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.name} is not connected")

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        self._require()
        rng = np.random.default_rng(seed)
        self.resets.append(seed)
        self.pos = rng.uniform(-0.3, 0.3, self.dim)
        self.goal = rng.uniform(-0.3, 0.3, self.dim)
        self._steps, self._success, self._return = 0, False, 0.0
        return self.get_observation()

    def _maybe_fail(self, where: str) -> None:
        if self.fail_at is not None and where == self.fail_in and self._steps >= self.fail_at:
            raise (FakeEpisodeFault if self.episode_fault else FakeFault)(
                f"{self.name}: injected fault in {where} at step {self._steps}")

    def get_observation(self) -> dict[str, np.ndarray]:
        self._require()
        self._maybe_fail("get_observation")
        self.observations += 1
        if not self.has_state:
            return {}
        return {"state": np.concatenate([self.pos, self.goal]).astype(np.float32)}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._require()
        self._maybe_fail("send_action")
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_dim), self.low, self.high)
        self.sent.append(a.astype(np.float32))
        self.pos = self.pos + self.gain * a[: self.dim]
        self._steps += 1
        dist = float(np.linalg.norm(self.pos - self.goal))
        self._success |= dist < self.tol
        self._return -= dist
        return a.astype(np.float32)

    def go_safe(self) -> None:
        self.go_safe_calls += 1
        log.info("%s: go_safe (holding at the safe pose)", self.name)

    def episode_info(self) -> dict:
        return {"success": bool(self._success), "return": float(self._return)}

    def episode_done(self) -> bool:
        return self._steps >= self.max_steps

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, rpy) of the 'end effector' (the point mass; rpy always 0)."""
        return self.pos[:3].copy(), np.zeros(3)

    def render(self, width: int, height: int) -> np.ndarray:
        """A dark frame with the point (white) and the goal (green) drawn in the first two dims."""
        img = np.full((height, width, 3), 30, np.uint8)
        for p, colour in ((self.goal, (0, 200, 0)), (self.pos, (255, 255, 255))):
            x = int(np.clip((p[0] + 1) / 2 * (width - 1), 0, width - 1))
            y = int(np.clip((p[1 if self.dim > 1 else 0] + 1) / 2 * (height - 1), 0, height - 1))
            img[max(y - 1, 0): y + 2, max(x - 1, 0): x + 2] = colour
        return img


class FakeCamera(Camera):
    """Synthetic RGB frames (a moving gradient). `stale_after=N`: after N frames it keeps returning
    the N-th frame with its old timestamp (a frozen driver); `fail_after=N`: read() raises
    (a camera that stopped delivering); `age=s`: every frame's timestamp is s seconds in the past."""

    name = "fake"

    def __init__(self, width: int = 64, height: int = 64, *, stale_after: int | None = None,
                 fail_after: int | None = None, age: float = 0.0):
        self.width, self.height = int(width), int(height)
        self.stale_after, self.fail_after, self.age = stale_after, fail_after, float(age)
        self._connected, self._index, self._last = False, 0, None
        self.reads = 0

    @property
    def spec(self) -> ArraySpec:
        return ArraySpec((self.height, self.width, 3), "uint8")

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def read(self) -> Frame:
        if not self._connected:
            raise DeviceNotConnectedError("fake camera is not connected")
        self.reads += 1
        if self.fail_after is not None and self._index >= self.fail_after:
            raise FakeFault(f"fake camera stopped delivering after {self._index} frames")
        if self.stale_after is not None and self._index >= self.stale_after and self._last is not None:
            return self._last
        self._index += 1
        y = np.arange(self.height, dtype=np.uint16)[:, None]
        x = np.arange(self.width, dtype=np.uint16)[None, :]
        img = np.empty((self.height, self.width, 3), np.uint8)
        img[..., 0] = (x * 4 + self._index) % 256
        img[..., 1] = (y * 4) % 256
        img[..., 2] = (self._index * 8) % 256
        self._last = Frame(image=img, timestamp=time.monotonic() - self.age, index=self._index)
        return self._last
