"""Diagnostic, not a method: how does a bundle's action on the expert's own frames compare with the expert's hidden
action, dimension by dimension? For each dimension, over every step of the recording: the least-squares slope of
the bundle's action on the expert's (1 = full scale, < 1 = shrunk toward the mean, the signature of a labeller
regressing ambiguous windows to play's average), their correlation, and the mean error in units of the expert
action's standard deviation (a bias a delta-action policy integrates into drift). Reads hidden actions, so it
explains results; it never selects anything.

    python benchmarks/action_fit.py --data EXPERT_RECORDING BUNDLE [BUNDLE ...]

Writes benchmarks/results/action-fit.json (one entry per bundle and recording; bundle hash, code version, machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bundle_key, bundle_sha256, code_version, machine  # noqa: E402

from clamkit.dataset import Dataset  # noqa: E402
from clamkit.fileio import write_json_atomic  # noqa: E402
from clamkit.runtime.backends import make_backend  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def fit(actions: np.ndarray, truth: np.ndarray) -> dict:
    """Per-dimension slope, correlation and bias (in truth-std units) of actions against truth; None where the
    truth is constant (e.g. a gripper the expert never moves): then only the mean error is meaningful."""
    out = {"slope": [], "corr": [], "bias_std": [], "mean_error": []}
    for p, y in zip(actions.T, truth.T):
        var = float(y.var())
        ok = var > 1e-12 and p.std() > 0
        out["slope"].append(float(((y - y.mean()) * (p - p.mean())).mean() / var) if ok else None)
        out["corr"].append(float(np.corrcoef(y, p)[0, 1]) if ok else None)
        out["bias_std"].append(float((p - y).mean() / np.sqrt(var)) if var > 1e-12 else None)
        out["mean_error"].append(float((p - y).mean()))
    return out


def bundle_actions(bundle: Path, ds: Dataset, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's action on every frame that has an expert action, and those actions."""
    preds, truth = [], []
    with make_backend(bundle, "ort") as be:
        for i in range(len(ds)):
            ep = ds.episode(i)
            if "action" not in ep:
                raise SystemExit(f"{ds.root}: episode {i} has no actions (this diagnostic needs the expert's)")
            a = np.asarray(ep["action"])
            for t in range(len(a)):
                preds.append(np.asarray(be.infer({key: np.asarray(ep[key][t])}), np.float64).ravel())
            truth.append(a)
    return np.stack(preds), np.concatenate(truth).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--data", type=Path, required=True, help="a recording with the expert's actions")
    ap.add_argument("--key", default="image", help="the observation the bundle reads (default image)")
    a = ap.parse_args()
    ds = Dataset(a.data)
    out = RESULTS / "action-fit.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for bundle in a.bundles:
        pred, truth = bundle_actions(bundle, ds, a.key)
        f = fit(pred, truth)
        sha = bundle_sha256(bundle)
        results[bundle_key(bundle, a.data.resolve().name, sha=sha)] = {
            "bundle": str(bundle.resolve()), "bundle_sha256": sha, "data": str(a.data.resolve()), "steps": len(truth),
            **f, "code": code_version(), "machine": machine(), "command": sys.argv}
        write_json_atomic(out, results)
        show = lambda v: " ".join("   -  " if x is None else f"{x:+5.2f}" for x in v)  # noqa: E731
        print(f"{bundle.name}\n  slope {show(f['slope'])}\n  corr  {show(f['corr'])}\n  bias  {show(f['bias_std'])}",
              flush=True)


if __name__ == "__main__":
    main()
