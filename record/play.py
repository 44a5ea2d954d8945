"""Task-agnostic play for arms (the CLAM play set): one segment machine, shared by MetaWorld and widowx-sim.

Play is labelled data that is not expert behaviour. It runs in segments of a random number of steps;
each segment draws, in this order, a mode (goto 0.55, expert p, pause 0.1, random 0.35 - p), its
length, a target, a gripper command and a P-gain. goto drives the hand to the target with a noisy
P-controller, pause stays put, random takes uniform actions, expert follows the task expert. A
subclass says what a target is and how each mode acts on its robot; noise goes on every action.
"""

from __future__ import annotations

import numpy as np

from clamkit.record.policy import Policy

SEED_OFFSET = 7919  # the play stream of episode seed s is default_rng(s + 7919), apart from the env's


class SegmentPlay(Policy):
    MODES = ("goto", "expert", "pause", "random")
    SEGMENT_STEPS: tuple[int, int] = (8, 40)
    """A segment lasts integers(lo, hi) steps."""
    GRIP: tuple[float, float] = (-1.0, 1.0)
    """The gripper commands a segment picks from (closed, open)."""
    GAIN: tuple[float, float] = (5.0, 25.0)
    """Range of a goto segment's P-gain."""

    def __init__(self, expert: Policy, noise: float, expert_prob: float):
        self._expert, self.noise, self.expert_prob = expert, float(noise), float(expert_prob)
        self.rng = np.random.default_rng(0)
        self._mode, self._left, self._target, self._grip, self._gain = "goto", 0, None, 0.0, 1.0

    def reset(self, seed=None):
        self.rng = np.random.default_rng(None if seed is None else seed + SEED_OFFSET)
        self._left = 0
        self._expert.reset(seed)

    def _new_segment(self) -> None:
        r = self.rng
        self._mode = r.choice(self.MODES, p=[0.55, self.expert_prob, 0.1, 0.35 - self.expert_prob])
        self._left = int(r.integers(*self.SEGMENT_STEPS))
        self._target = self._draw_target(r)
        self._grip = float(r.choice(self.GRIP))
        self._gain = float(r.uniform(*self.GAIN))
        if self._mode == "expert":
            self._expert.reset()  # a phased expert (place-block, close-drawer) starts its attempt afresh from here

    def __call__(self, obs):
        if self._left <= 0:
            self._new_segment()
        self._left -= 1
        s = obs["state"]
        if self._mode == "expert":
            a = np.asarray(self._expert(obs), dtype=float)
        elif self._mode == "goto":
            a = self._goto(s)
        elif self._mode == "pause":
            a = self._pause(s)
        else:
            a = self._random()
        return self._perturb(a)

    # ------------------------------------------------------------------ what a subclass fills in

    def _draw_target(self, r: np.random.Generator):
        """A goto segment's target, drawn from r."""
        raise NotImplementedError

    def _goto(self, state: np.ndarray) -> np.ndarray:
        """The P-controller's action toward self._target with self._gain and gripper self._grip."""
        raise NotImplementedError

    def _pause(self, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _random(self) -> np.ndarray:
        raise NotImplementedError

    def _perturb(self, a: np.ndarray) -> np.ndarray:
        """Noise on the chosen action, clipped to the bounds: the policy's output (float32)."""
        raise NotImplementedError
