"""Diagnostic, not a method: how much does one action dimension cost a policy? The bundle is evaluated on the
same seeded widowx-sim test episodes as clam-eval runs them, once as it is and once with dimension DIM of every
action it outputs replaced by VALUE (task knowledge, e.g. "reach-block's expert keeps the gripper open").

    python benchmarks/action_override.py BUNDLE --task reach-block --dim 6 --value 1.0 --episodes 40

Writes benchmarks/results/action-override.json (one entry per bundle, task, dimension and value; bundle hash,
code version and machine with it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bundle_key, bundle_sha256, code_version, machine  # noqa: E402

from clamkit.fileio import write_json_atomic  # noqa: E402

ev = importlib.import_module("clamkit.runtime.evaluate")  # the module (clamkit.runtime.evaluate is also a function)
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 100_000  # the test seeds (clam-eval's default)


class Override:
    """A backend whose actions have one dimension forced to a constant; everything else is the bundle's."""

    def __init__(self, backend, dim: int, value: float):
        self.backend, self.dim, self.value = backend, dim, value

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def __enter__(self):
        self.backend.__enter__()
        return self

    def __exit__(self, *exc):
        return self.backend.__exit__(*exc)

    def infer(self, obs):
        a = np.array(self.backend.infer(obs), copy=True)
        a[..., self.dim] = self.value
        return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--task", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--value", type=float, required=True)
    ap.add_argument("--episodes", type=int, default=40)
    a = ap.parse_args()
    env = f"widowx-sim:{a.task}"
    as_is = ev.evaluate(a.bundle, env, episodes=a.episodes, seed=SEED)["success_rate"]
    make = ev.make_backend
    ev.make_backend = lambda *args, **kw: Override(make(*args, **kw), a.dim, a.value)
    try:
        forced = ev.evaluate(a.bundle, env, episodes=a.episodes, seed=SEED)["success_rate"]
    finally:
        ev.make_backend = make
    sha = bundle_sha256(a.bundle)
    out = RESULTS / "action-override.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results[bundle_key(a.bundle, a.task, f"dim{a.dim}={a.value:g}", sha=sha)] = {
        "bundle": str(a.bundle.resolve()), "bundle_sha256": sha, "task": a.task, "dim": a.dim, "value": a.value,
        "episodes": a.episodes, "seed": SEED, "success": {"as_is": as_is, "forced": forced},
        "code": code_version(), "machine": machine(), "command": sys.argv}
    write_json_atomic(out, results)
    print(f"{a.bundle.name} {a.task}: as is {as_is:.3f}, dim {a.dim} = {a.value:g}: {forced:.3f}", flush=True)


if __name__ == "__main__":
    main()
