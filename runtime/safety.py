"""The safety layer between the policy and the robot, the same for every backend (DESIGN §6).

Per tick, in this order:
  1. non-finite action (NaN/Inf) -> hold: zeros on delta dimensions, the previous command on
     absolute ones (a gripper), and count it; too many in a row is a fault.
  2. clip to the action bounds (count ticks where anything was clipped).
  3. cap the per-tick change |a_t - a_{t-1}| <= max_delta (count).
  4. for end-effector delta actions with a workspace box: clamp the EE target (current EE
     position from robot.ee_pose() + Δxyz) into the box (count).
And before a tick uses a camera frame: a frame older than `max_frame_age` raises StaleFrame,
which stops the run (the loop then sends nothing more and moves the robot to its safe pose).
Two timing watchdogs, off unless set (clam-run sets an inference timeout by default): an inference
slower than `infer_timeout` raises InferenceTimeout before its (late) action is sent, and a tick that
ends more than `max_overrun` seconds past its deadline raises TickOverrun. The loop runs inference on a
worker thread and waits at most `infer_timeout` (runtime/inference.py), so a backend that never
returns is stopped within the deadline too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from clamkit.specs import ActionSpec

log = logging.getLogger(__name__)

EE_DELTA = "ee_delta_xyz_rpy+gripper"


class RuntimeFault(RuntimeError):
    """Something unsafe happened mid-run; the loop stops sending and goes to the safe pose."""


class StaleFrame(RuntimeFault):
    """The camera frame is older than the watchdog allows (camera stalled or disconnected)."""


class NonFiniteActions(RuntimeFault):
    """The policy produced NaN/Inf for too many ticks in a row, or on a tick with nothing to hold."""


class InferenceTimeout(RuntimeFault):
    """backend.infer took longer than the configured timeout (a stalled GPU, a swapped-out process)."""


class TickOverrun(RuntimeFault):
    """A tick ended later than its deadline by more than the configured slack."""


def delta_mask(semantics: str, dim: int) -> np.ndarray:
    """True where an action dimension is a delta/velocity/effort (hold = 0), False where it is an
    absolute command (hold = the previous command). Unknown semantics count as absolute."""
    mask = np.zeros(dim, bool)
    if semantics == EE_DELTA or semantics.startswith("ee_delta"):
        mask[:6] = True  # Δxyz, Δrpy; the gripper (last) is absolute, 0 = closed, 1 = open
    elif semantics.startswith("metaworld"):
        mask[:3] = True  # mocap position deltas; the gripper effort stays
    elif semantics.startswith("dmc:") or "delta" in semantics:
        mask[:] = True  # joint torques / velocity commands: 0 is the neutral command
    return mask[:dim]


def workspace_box(ws) -> np.ndarray | None:
    """Normalise a workspace given as ((lo xyz), (hi xyz)), a (2, 3) array, an object with .low/.high
    or a dict {"low", "high"} into a (2, 3) float array."""
    if ws is None:
        return None
    if isinstance(ws, dict):
        ws = (ws["low"], ws["high"])
    elif hasattr(ws, "low") and hasattr(ws, "high"):
        ws = (ws.low, ws.high)
    box = np.asarray(ws, dtype=np.float64).reshape(2, 3)  # (lo, hi) x xyz
    if (box[0] > box[1]).any():
        raise ValueError(f"workspace low {box[0]} above high {box[1]}")
    return box


@dataclass
class SafetyCounters:
    """How often each rule fired (ticks, not dimensions)."""

    nonfinite: int = 0
    clipped: int = 0
    rate_limited: int = 0
    workspace_clamped: int = 0
    stale_frames: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SafetyLayer:
    """Filters each raw policy action into a command that is safe to send.

    action_spec: bounds and semantics of the robot's actions.
    workspace: EE box ((x, y, z) low, (x, y, z) high) in metres, used with ee_delta semantics.
    max_delta: largest per-tick change of any action dimension (scalar or per-dimension), None = off.
    ee_delta_scale: metres (and radians) per unit of Δ action; 1.0 when actions are already in metres.
    max_frame_age: seconds after which a camera frame is stale (a fault), None = off.
    max_nonfinite_streak: consecutive NaN/Inf ticks tolerated (holding) before it is a fault.
    infer_timeout: seconds one inference may take before it is a fault (InferenceTimeout), None = off.
    max_overrun: seconds a tick may end past its deadline before it is a fault (TickOverrun), None = off
        (overruns are then only counted and warned about).
    """

    action_spec: ActionSpec
    workspace: object = None
    max_delta: float | np.ndarray | None = None
    ee_delta_scale: float = 1.0
    max_frame_age: float | None = 0.5
    max_nonfinite_streak: int = 5
    infer_timeout: float | None = None
    max_overrun: float | None = None
    counters: SafetyCounters = field(default_factory=SafetyCounters)

    def __post_init__(self):
        spec = self.action_spec
        self.low, self.high = np.asarray(spec.low, np.float32), np.asarray(spec.high, np.float32)
        self._delta = delta_mask(spec.semantics, spec.dim)
        self._box = workspace_box(self.workspace)
        self._ee = spec.semantics.startswith("ee_delta")
        if self._box is not None and not self._ee:
            log.warning("workspace box ignored: action semantics '%s' are not end-effector deltas", spec.semantics)
            self._box = None
        if self.max_delta is not None:
            self.max_delta = np.broadcast_to(np.asarray(self.max_delta, np.float32), (spec.dim,))
            if (self.max_delta <= 0).any():
                raise ValueError("max_delta must be positive")
        for name in ("infer_timeout", "max_overrun"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be positive (or None for off), got {v}")
        self._prev: np.ndarray | None = None
        self._streak = 0

    @classmethod
    def for_robot(cls, robot, **kwargs) -> "SafetyLayer":
        """Defaults from the robot: its action spec, its `workspace` box and `ee_delta_scale` if it has them."""
        kwargs.setdefault("workspace", getattr(robot, "workspace", None))
        if getattr(robot, "ee_delta_scale", None) is not None:
            kwargs.setdefault("ee_delta_scale", float(robot.ee_delta_scale))
        return cls(robot.action_spec, **kwargs)

    def reset(self) -> None:
        """New episode: forget the previous command (the rate cap starts afresh)."""
        self._prev, self._streak = None, 0

    def hold(self) -> np.ndarray:
        """The command that keeps the robot where it is."""
        a = np.zeros(self.action_spec.dim, np.float32)
        if not self._delta.all():
            if self._prev is None:
                raise NonFiniteActions("policy produced NaN/Inf on the first tick of an episode; there is no previous "
                                       f"command to hold for the absolute dimensions of '{self.action_spec.semantics}'")
            a[~self._delta] = self._prev[~self._delta]
        return a

    def check_frame(self, frame, now: float | None = None) -> float:
        """Camera watchdog: returns the frame's age in seconds; raises StaleFrame when too old."""
        age = (time.monotonic() if now is None else now) - float(frame.timestamp)
        if self.max_frame_age is not None and age > self.max_frame_age:
            self.counters.stale_frames += 1
            raise StaleFrame(f"camera frame {getattr(frame, 'index', '?')} is {age * 1e3:.0f} ms old "
                             f"(limit {self.max_frame_age * 1e3:.0f} ms); camera stalled?")
        return age

    def check_inference(self, seconds: float) -> None:
        """Inference watchdog: raises InferenceTimeout when one inference took longer than infer_timeout."""
        if self.infer_timeout is not None and seconds > self.infer_timeout:
            raise InferenceTimeout(f"inference took {seconds * 1e3:.0f} ms (timeout {self.infer_timeout * 1e3:.0f} ms); "
                                   "its action was not sent")

    def check_overrun(self, late: float) -> None:
        """Tick watchdog: raises TickOverrun when a tick ended more than max_overrun seconds past its deadline."""
        if self.max_overrun is not None and late > self.max_overrun:
            raise TickOverrun(f"tick ended {late * 1e3:.0f} ms past its deadline (limit {self.max_overrun * 1e3:.0f} ms)")

    def __call__(self, action: np.ndarray, robot=None) -> np.ndarray:
        """Filter one raw action; `robot` (for ee_pose()) is needed only with a workspace box."""
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape[0] != self.action_spec.dim:
            raise RuntimeFault(f"policy returned {a.shape[0]} action values, robot takes {self.action_spec.dim}")
        if not np.isfinite(a).all():
            self.counters.nonfinite += 1
            self._streak += 1
            if self._streak > self.max_nonfinite_streak:
                raise NonFiniteActions(f"policy produced NaN/Inf for {self._streak} ticks in a row")
            a = self.hold()
            self._prev = a
            return a.copy()
        self._streak = 0
        clipped = np.clip(a, self.low, self.high)
        if (clipped != a).any():
            self.counters.clipped += 1
        a = clipped
        if self.max_delta is not None and self._prev is not None:
            capped = np.clip(a, self._prev - self.max_delta, self._prev + self.max_delta)
            if (capped != a).any():
                self.counters.rate_limited += 1
            a = capped
        if self._box is not None and robot is not None:
            a = self._clamp_workspace(a, robot)
        self._prev = a
        return a.copy()

    def _clamp_workspace(self, a: np.ndarray, robot) -> np.ndarray:
        xyz, _ = robot.ee_pose()
        xyz = np.asarray(xyz, np.float64)
        target = xyz + a[:3] * self.ee_delta_scale
        inside = np.clip(target, self._box[0], self._box[1])
        if (inside != target).any():
            if np.abs(inside - target).max() > 1e-6:  # count real clamps, not float rounding at a wall
                self.counters.workspace_clamped += 1
            a = a.copy()
            # Back to action units; an EE already outside the box is pulled in no faster than the bounds allow.
            a[:3] = np.clip((inside - xyz) / self.ee_delta_scale, self.low[:3], self.high[:3])
        return a
