"""A scripted expert made worse on purpose: data at every level of competence, from expert to random.

Per episode a random-action probability p is drawn from U(lo, hi); at every step, with probability p
the action is uniform over the action bounds, otherwise the expert's action plus Gaussian noise.
p in [0, 1] spans a whole replay buffer's worth of skill (the CLAM paper's unlabelled pool); a high
range gives low-return labelled episodes with no clean expert segments.
"""

from __future__ import annotations

import numpy as np

from clamkit.record.policy import Policy
from clamkit.specs import ActionSpec


class NoisyExpert(Policy):
    def __init__(self, expert: Policy, action_spec: ActionSpec, random_prob=(0.0, 1.0), noise: float = 0.1):
        lo, hi = random_prob
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"random-action probability range ({lo}, {hi}) must satisfy 0 <= lo <= hi <= 1")
        self.expert, self.range, self.noise = expert, (float(lo), float(hi)), float(noise)
        self.low, self.high = np.asarray(action_spec.low, np.float64), np.asarray(action_spec.high, np.float64)
        self.rng = np.random.default_rng(0)
        self.p = 0.0

    def reset(self, seed=None):
        self.expert.reset(seed)
        self.rng = np.random.default_rng(None if seed is None else seed + 104_729)
        self.p = float(self.rng.uniform(*self.range))

    def episode_info(self) -> dict:
        return {"random_prob": round(self.p, 4)}

    def __call__(self, obs):
        a = np.asarray(self.expert(obs), np.float64)  # always called: stateful experts keep their phase
        if self.rng.random() < self.p:
            a = self.rng.uniform(self.low, self.high)
        else:
            a = a + self.rng.normal(0.0, self.noise * (self.high - self.low) / 2)
        return np.clip(a, self.low, self.high).astype(np.float32)
