"""How episodes are scored, in one place for every stage: the success/return summary of a set of episodes
(a dataset's episode table, a recording, a clam-run or clam-eval report, training's evaluation), the
simulated environments evaluation runs on, and the seed it starts from.
"""

from __future__ import annotations

import numbers
from typing import Iterable

import numpy as np

EVAL_SEED = 100_000
"""First episode seed of an evaluation (clam-eval, clam-train's eval.seed). clam-record seeds from 0, so the
scenes an evaluation sees were never recorded."""

SIM_KINDS = ("metaworld", "dmc", "widowx-sim", "fake")
"""The robot kinds an evaluation can run on (--env KIND[:TASK]): simulations, no hardware."""


def _is_number(v) -> bool:
    return isinstance(v, (bool, np.bool_, numbers.Real))


def summarize(episodes: Iterable[dict]) -> dict:
    """{"success_rate", "mean_return"} over the episodes that report "success" / "return" (as bool or
    number; None or a missing key does not count); a key is present only when some episode reports it."""
    episodes = list(episodes)
    succ = [bool(e["success"]) for e in episodes if _is_number(e.get("success"))]
    rets = [float(e["return"]) for e in episodes if _is_number(e.get("return"))]
    out = {}
    if succ:
        out["success_rate"] = float(np.mean(succ))
    if rets:
        out["mean_return"] = float(np.mean(rets))
    return out


def progress_postfix(episodes: Iterable[dict]) -> dict[str, str]:
    """The same summary, short, for a progress bar: {"success": "0.85", "return": "412.3"}."""
    s = summarize(episodes)
    post = {}
    if "success_rate" in s:
        post["success"] = f"{s['success_rate']:.2f}"
    if "mean_return" in s:
        post["return"] = f"{s['mean_return']:.1f}"
    return post
