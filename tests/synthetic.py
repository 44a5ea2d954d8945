"""Synthetic datasets shared by the test packages (importable as `synthetic`: pytest's pythonpath has tests/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clamkit.dataset import DatasetWriter
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

LIN_ACTION = ActionSpec(dim=2, low=(-1, -1), high=(1, 1), semantics="linear:test")


def linear_system(seed: int = 0, D: int = 4, A: int = 2):
    """o_{t+1} = M o_t + B a_t, M a damped rotation pair, B random."""
    rng = np.random.default_rng(seed)
    th = 0.3
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    M = 0.97 * np.kron(np.eye(D // 2), rot)
    B = rng.normal(0, 0.3, (D, A))
    K = 0.4 * np.linalg.pinv(B) @ M  # a fixed, stabilising linear feedback "expert": a = -K o
    return M, B, K


def write_linear(root: str | Path, kind: str, episodes: int, T: int = 60, seed: int = 0, labelled: bool = True,
                 context: tuple[float, float] | None = None) -> str:
    """kind="expert": a = clip(-K o); kind="play": a ~ U(-1, 1). Returns the dataset path.
    context=(lo, hi) appends two dimensions drawn per episode from U(lo, hi) and constant within it: a part
    of the scene the dynamics ignore (where an object stands), so episodes can come from different regions."""
    M, B, K = linear_system()
    D = M.shape[0]
    C = 0 if context is None else 2
    w = DatasetWriter(root, observation=ObservationSpec({"state": ArraySpec((D + C,), "float32")}), action=LIN_ACTION,
                      fps=10, robot="linear", task="linear")
    rng = np.random.default_rng(seed + (0 if kind == "expert" else 1000))
    for _ in range(episodes):
        o = rng.uniform(-2, 2, D)
        c = rng.uniform(*context, C) if C else np.zeros(0)
        obs, acts = [np.r_[o, c]], []
        for _ in range(T - 1):
            a = np.clip(-K @ o, -1, 1) if kind == "expert" else rng.uniform(-1, 1, 2)
            o = M @ o + B @ a
            obs.append(np.r_[o, c])
            acts.append(a)
        w.add_episode({"state": np.array(obs, np.float32)}, np.array(acts, np.float32) if labelled else None)
    return str(root)
