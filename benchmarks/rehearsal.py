"""Does the rehearsal agree with the simulator? One pixel bundle, the same seeded episodes, two paths:

  sim        clam-run BUNDLE --robot widowx-sim:TASK --camera sim              (the simulator, as clam-eval runs it)
  emulated   clam-run BUNDLE --robot widowx --camera realsense --emulate        (the real Interbotix + RealSense
             drivers against MuJoCo physics in real time, docs/deploy.md §6)

and reports both success rates, their gap (issue target: within 0.1), the episodes whose outcome differs
(seed, success and fault on each path) and what the emulated drivers add to the latency of a tick
(camera-to-action age, tick, per stage; p50 / p99 ms). Both run at the bundle's rate (5 Hz for WidowX
bundles), so ages and tick times compare; 40 episodes of 50 ticks take ~7 min per path. Both run with
--continue-after-fault: the effort guard (the real driver's, and widowx-sim's copy of it) fails its
episode on either path and the run goes on, so both paths score the same 40 episodes. Provenance
(code commit, bundle hash, machine and its load) goes with the entry, and so does the physics the
emulator skipped because the host stalled its real-time thread (per episode; nonzero on a loaded machine).

    python benchmarks/rehearsal.py BUNDLE --task reach-block --episodes 40
    python benchmarks/rehearsal.py BUNDLE --task reach-block --robot-opt ros=ros1   # the ROS 1 layout

Writes benchmarks/results/rehearsal.json (one entry per bundle + task + options, keyed with the bundle's hash;
resumable per path).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bundle_key, bundle_sha256, code_version, machine, run_cli  # noqa: E402

from clamkit.fileio import write_json_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SEED = 100_000  # clam-eval's default: scenes never recorded for training


def run(bundle: Path, args: list[str], report: Path) -> dict:
    """One clam-run (resumable: skipped when its report exists); the report, plus the load around the run."""
    return run_cli("clam-run", [bundle, *args, "--continue-after-fault", "--report", report, "--live-every", "0"], report)


def entry_key(bundle: Path, task: str, robot_opt: list[str], sha: str | None = None) -> str:
    """The entry's name in rehearsal.json and its resume folder (bundle folder, task, options, bundle hash)."""
    return bundle_key(bundle, task, *robot_opt, sha=sha)


def differing(sim: dict, emu: dict) -> list[dict]:
    """The episodes (by seed) whose success differs between the paths, with each path's fault if any."""
    by_seed = {e["seed"]: e for e in emu["episodes"]}
    out = []
    for s in sim["episodes"]:
        e = by_seed.get(s["seed"])
        if e is not None and bool(s.get("success")) != bool(e.get("success")):
            out.append({"seed": s["seed"], "sim": {k: s.get(k) for k in ("success", "fault")},
                        "emulated": {k: e.get(k) for k in ("success", "fault")}})
    return out


def faults(r: dict) -> list[dict]:
    return [{"seed": e["seed"], "fault": e["fault"]} for e in r["episodes"] if e.get("fault")]


def skipped(r: dict) -> dict:
    """Real-time physics the emulator skipped because the host stalled it: total seconds, and the episodes
    it touched (their outcome says more about the machine's load than about the drivers)."""
    eps = [e for e in r["episodes"] if e.get("physics_skipped_s", 0) > 0]
    return {"total_s": round(sum(e["physics_skipped_s"] for e in eps), 3), "episodes": [e["seed"] for e in eps]}


def latency(r: dict) -> dict:
    """{name: (p50, p99)} for the tick, the camera-to-action age and every stage of the tick."""
    lat = r["latency_ms"]
    rows = {k: lat[k] for k in ("tick", "camera_to_action", "infer")} | {f"stage/{k}": v for k, v in lat["stages"].items()}
    return {k: (round(v["p50"], 2), round(v["p99"], 2)) for k, v in rows.items() if v.get("n")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--task", default="reach-block")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--robot-opt", action="append", default=[], help="extra emulated robot option KEY=VALUE")
    a = ap.parse_args()
    sha = bundle_sha256(a.bundle)
    key = entry_key(a.bundle, a.task, a.robot_opt, sha)
    work = RESULTS / "cache" / "rehearsal" / key
    work.mkdir(parents=True, exist_ok=True)
    common = ["--episodes", str(a.episodes), "--seed", str(SEED)]
    sim = run(a.bundle, ["--robot", f"widowx-sim:{a.task}", "--camera", "sim", *common], work / "sim.json")
    emu = run(a.bundle, ["--robot", "widowx", "--camera", "realsense", "--emulate", "--robot-opt", f"task={a.task}",
                         *[x for o in a.robot_opt for x in ("--robot-opt", o)], *common], work / "emulated.json")
    ls, le = latency(sim), latency(emu)
    entry = {"bundle": str(a.bundle.resolve()), "bundle_sha256": sha, "code": code_version(),
             "machine": machine(), "load_before_after": {"sim": sim.get("load_before_after"),
                                                         "emulated": emu.get("load_before_after")},
             "task": a.task, "episodes": a.episodes, "seed": SEED, "robot_opt": a.robot_opt,
             "success": {"sim": sim["success_rate"], "emulated": emu["success_rate"]},
             "gap": round(abs(sim["success_rate"] - emu["success_rate"]), 3),
             "latency_ms_p50_p99": {"sim": ls, "emulated": le},
             "added_by_emulated_drivers_ms_p50": {k: round(le[k][0] - ls[k][0], 2) for k in le if k in ls},
             "missed_deadlines": {"sim": sim["missed_deadlines"], "emulated": emu["missed_deadlines"]},
             "stop_reason": {"sim": sim["stop_reason"], "emulated": emu["stop_reason"]},
             "episodes_run": {"sim": len(sim["episodes"]), "emulated": len(emu["episodes"])},
             "faults": {"sim": faults(sim), "emulated": faults(emu)},
             "physics_skipped": skipped(emu),
             "differing_episodes": differing(sim, emu)}
    out = RESULTS / "rehearsal.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results[key] = entry
    write_json_atomic(out, results)
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
