"""What clam-record rolls on a Robot: a Policy maps an observation dict to an action (robot units)."""

from __future__ import annotations

import abc
from typing import Callable

import numpy as np


class Policy(abc.ABC):
    """A scripted controller for recording: observation dict -> action (robot units)."""

    def reset(self, seed: int | None = None) -> None:
        """Called at the start of each episode."""

    def episode_info(self) -> dict:
        """Per-episode facts stored in the dataset's episode table (e.g. a noise level)."""
        return {}

    @abc.abstractmethod
    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class CallablePolicy(Policy):
    """Any callable obs_dict -> action as a Policy, so any controller can be recorded.
    `reset_fn(seed)`, when given, is called at the start of each episode."""

    def __init__(self, fn: Callable[[dict], np.ndarray], reset_fn: Callable[[int | None], None] | None = None):
        self.fn, self.reset_fn = fn, reset_fn

    def reset(self, seed=None):
        if self.reset_fn is not None:
            self.reset_fn(seed)

    def __call__(self, obs):
        return np.asarray(self.fn(obs), dtype=np.float32)
