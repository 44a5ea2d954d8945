"""MetaWorld's scripted experts (clipped to the action bounds) and a task-agnostic noisy play policy."""

from __future__ import annotations

import numpy as np

from clamkit.errors import UserError
from clamkit.record.play import SegmentPlay
from clamkit.record.policy import Policy
from clamkit.robot.metaworld import HAND, import_metaworld


def expert_policy_class(task: str):
    """MetaWorld's scripted policy class for a task, from MetaWorld's own task -> policy table
    (names are not derivable: peg-insert-side-v3 -> SawyerPegInsertionSideV3Policy)."""
    import_metaworld()
    from metaworld.policies import ENV_POLICY_MAP

    cls = ENV_POLICY_MAP.get(task)
    if cls is None:
        raise UserError(f"no scripted expert for MetaWorld task '{task}' (MetaWorld has one for each of: "
                        f"{', '.join(sorted(ENV_POLICY_MAP)[:4])}, ...)")
    return cls


class MetaWorldExpert(Policy):
    """The task's scripted expert, clipped to the action bounds."""

    def __init__(self, task: str):
        self._policy = expert_policy_class(task)()

    def __call__(self, obs):
        return np.clip(self._policy.get_action(obs["state"].astype(np.float64)), -1, 1).astype(np.float32)


class MetaWorldPlay(SegmentPlay):
    """Task-agnostic, non-expert labelled data (record/play.py): the hand wanders between random targets
    with a noisy P-controller, opens and closes the gripper at random, pauses, jitters, and only now and
    then follows the task expert for a while. Heavy Gaussian noise on every action."""

    SEGMENT_STEPS, GRIP, GAIN = (8, 40), (-1.0, 1.0), (5.0, 25.0)

    def __init__(self, task: str, noise: float = 0.3, expert_prob: float = 0.2,
                 low=(-0.3, 0.4, 0.05), high=(0.3, 0.9, 0.3)):
        super().__init__(MetaWorldExpert(task), noise, expert_prob)
        self.low, self.high = np.array(low), np.array(high)
        self._target = np.zeros(3)

    def _draw_target(self, r):
        return r.uniform(self.low, self.high)

    def _goto(self, s):
        return np.append(np.clip(self._gain * (self._target - s[HAND]), -1, 1), self._grip)

    def _pause(self, s):
        return np.zeros(4)

    def _random(self):
        return self.rng.uniform(-1, 1, 4)

    def _perturb(self, a):
        return np.clip(a + self.rng.normal(0, self.noise, 4), -1, 1).astype(np.float32)
