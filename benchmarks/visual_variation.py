"""How much does a pixel policy depend on the exact render it was trained on? Each bundle is evaluated on the
same seeded widowx-sim episodes twice through clam-eval: as recorded (plain) and with the simulator's visual
variation (`--robot-opt vary=all`: table and object colours, lighting, ±2 cm camera jitter, three distractors;
the scene layout and so the task are identical, docs/design.md "Visual variation").

    python benchmarks/visual_variation.py --task push-button BUNDLE [BUNDLE ...] --episodes 40
    python benchmarks/visual_variation.py --task close-drawer BUNDLE --vary colors,lighting

Writes benchmarks/results/visual-variation.json: per bundle and option, both success rates, the drop, the bundle's
hash and the commands; resumable (a finished evaluation is not run again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bundle_key, bundle_sha256, code_version, machine, run_cli  # noqa: E402

from clamkit.fileio import write_json_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 100_000  # the test seeds (clam-eval's default)


def evaluate(bundle: Path, task: str, episodes: int, opts: list[str], report: Path) -> dict:
    """One clam-eval (resumable: skipped when its report exists); its report plus the command that made it."""
    return run_cli("clam-eval", [bundle, "--env", f"widowx-sim:{task}", "--episodes", episodes, "--seed", SEED,
                                 *[x for o in opts for x in ("--robot-opt", o)], "--json", report], report)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--task", required=True)
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--vary", default="all", help="widowx-sim's vary option (all, or e.g. colors,lighting)")
    a = ap.parse_args()
    out = RESULTS / "visual-variation.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for bundle in a.bundles:
        sha = bundle_sha256(bundle)
        key = bundle_key(bundle, a.task, f"vary={a.vary}", sha=sha)
        work = RESULTS / "cache" / "visual-variation" / key
        plain = evaluate(bundle, a.task, a.episodes, [], work / "plain.json")
        varied = evaluate(bundle, a.task, a.episodes, [f"vary={a.vary}"], work / "varied.json")
        results[key] = {"bundle": str(bundle.resolve()), "bundle_sha256": sha, "task": a.task, "vary": a.vary,
                        "episodes": a.episodes, "seed": SEED, "code": code_version(), "machine": machine(),
                        "success": {"plain": plain["success_rate"], "varied": varied["success_rate"]},
                        "drop": round(plain["success_rate"] - varied["success_rate"], 3),
                        "commands": {"plain": plain.get("command"), "varied": varied.get("command")}}
        write_json_atomic(out, results)
        print(f"{key}: plain {plain['success_rate']:.2f}, vary={a.vary} {varied['success_rate']:.2f}", flush=True)


if __name__ == "__main__":
    main()
