"""Does CLAM beat its baselines on the same data? The paper's claim, measured here.

Per task: 100 expert episodes whose actions are hidden from every method but the bc-expert oracle,
50 labelled non-expert play episodes. Methods: clam, bc-play, vq, vpt, bc-expert (oracle). Each
trained with the same config and budget, exported with clam-export, and evaluated with clam-eval
over 40 seeded episodes (success at any step; dm_control: return / scripted expert's return).

    python benchmarks/learning.py --quick          # < 20 min on 2 cores
    python benchmarks/learning.py                  # the full table (hours on a CPU)

Resumable: finished cells are read back from benchmarks/results/learning.json and skipped.
Everything runs through the real CLIs (clam-record, clam-train, clam-export, clam-eval).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "cache"
METHODS = ["clam", "bc-play", "vq", "vpt", "bc-expert"]
METAWORLD = ["reach-v3", "button-press-v3", "drawer-open-v3", "pick-place-v3", "assembly-v3"]  # last two grasp
DMC = ["reacher-easy", "cartpole-swingup"]


def sh(*cmd: str, log: Path | None = None) -> str:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    p = subprocess.run(list(cmd), capture_output=True, text=True, env=env, cwd=ROOT)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout


def bin_(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def record(env: str, task: str, kind: str, episodes: int, steps: int, seed: int) -> Path:
    out = CACHE / "data" / task / kind
    if not (out / "meta.json").exists() or json.loads((out / "meta.json").read_text())["episodes"].__len__() < episodes:
        sh(bin_("clam-record"), env, "--task", task, "--policy", kind, "--episodes", str(episodes),
           "--max-steps", str(steps), "--seed", str(seed), "--out", str(out), "--quiet")
    return out


def cell(env: str, task: str, method: str, seed: int, a) -> dict:
    """Train, export and evaluate one (task, method, seed)."""
    steps = a.steps if env == "metaworld" else 1000  # dm_control: full 1000-step episodes, as evaluated
    expert = record(env, task, "expert", a.expert_episodes, steps, seed=1000)
    play = record(env, task, "play", a.play_episodes, steps, seed=2000)
    # A run is keyed by everything that shapes it: method, seed, recipe, and --set variants.
    variant = f"{method}-s{seed}-{Path(a.config[env]).stem}" + (f"-{a.name}" if a.set else "")
    run = CACHE / "runs" / task / variant
    bundle = CACHE / "bundles" / task / variant
    t0 = time.perf_counter()
    if not (run / "policy.pt").exists():
        resume = ["--resume"] if (run / "checkpoint.pt").exists() else []
        sets = [f"--set=algo={method}"] + [f"--set={s}" for s in a.set]
        sh(bin_("clam-train"), "--config", str(ROOT / a.config[env]), "--unlabelled", str(expert), "--labelled", str(play),
           "--out", str(run), "--seed", str(seed), *sets, *resume, log=run.parent / f"{variant}.train.log")
    train_s = time.perf_counter() - t0
    if not (bundle / "clam.json").exists():
        sh(bin_("clam-export"), str(run), "--out", str(bundle), "--exporter", "legacy")
    env_name = f"metaworld:{task}" if env == "metaworld" else f"dmc:{task}"
    report = bundle.parent / f"{variant}.eval.json"
    sh(bin_("clam-eval"), str(bundle), "--env", env_name, "--episodes", str(a.eval_episodes), "--seed", "100000",
       "--max-steps", str(a.eval_steps if env == "metaworld" else 1000), "--json", str(report))
    r = json.loads(report.read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    probe = {k: v for k, v in summary.get("metrics", {}).items() if k.startswith(("probe/", "select/"))}
    if env == "metaworld":
        score = r["success_rate"]
    else:
        expert_return = json.loads((expert / "meta.json").read_text())
        score = r["mean_return"] / np.mean([e["return"] for e in expert_return["episodes"]])
    return {"env": env, "task": task, "method": method, "seed": seed, "score": float(score), "episodes": a.eval_episodes,
            "train_s": round(train_s, 1),
            "latency_p99_ms": r.get("latency", {}).get("p99_ms"), "probe": probe}


def table(cells: list[dict]) -> tuple[str, dict]:
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    methods = [m for m in METHODS if any(c["method"] == m for c in cells)]
    agg = {}
    lines = ["| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for t in tasks + (["mean (MetaWorld)"] if any(c["env"] == "metaworld" for c in cells) else []):
        row = []
        for m in methods:
            if t.startswith("mean"):
                per_seed = {}
                for c in cells:
                    if c["method"] == m and c["env"] == "metaworld":
                        per_seed.setdefault(c["seed"], []).append(c["score"])
                xs = [np.mean(v) for v in per_seed.values()]
            else:
                xs = [c["score"] for c in cells if c["task"] == t and c["method"] == m]
            if xs:
                row_cells = [c for c in cells if c["method"] == m and (c["task"] == t or (t.startswith("mean") and c["env"] == "metaworld"))]
                success = all(c["env"] == "metaworld" for c in row_cells)
                spread = spread_of(xs, int(np.sum([c.get("episodes", 20) for c in row_cells]))) if success or len(xs) > 1 else float("nan")
                agg[(t, m)] = (float(np.mean(xs)), spread, len(xs))
                row.append(f"{np.mean(xs):.2f} ± {spread:.2f}" if np.isfinite(spread) else f"{np.mean(xs):.2f}")
            else:
                row.append("–")
        lines.append(f"| {t} | " + " | ".join(row) + " |")
    return "\n".join(lines), agg


def spread_of(xs: list[float], episodes: int) -> float:
    """Std over training seeds when there are several; with one seed, the binomial standard error
    of a success rate over all its evaluation episodes (the spread a reader should keep in mind)."""
    if len(xs) > 1:
        return float(np.std(xs))
    p = float(np.clip(np.mean(xs), 0, 1))
    return float(np.sqrt(p * (1 - p) / max(episodes, 1)))


def plot(agg: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(t for t, _ in agg))
    methods = [m for m in METHODS if any(mm == m for _, mm in agg)]
    fig, ax = plt.subplots(figsize=(1.6 * len(tasks) + 2, 3.6))
    w = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs = np.arange(len(tasks)) + i * w
        mean = [agg.get((t, m), (np.nan, 0, 0))[0] for t in tasks]
        std = [agg.get((t, m), (0, 0, 0))[1] for t in tasks]
        ax.bar(xs, mean, w, yerr=std, label=m, capsize=2)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - w / 2, tasks, rotation=20, fontsize=8)
    ax.set_ylabel("success rate / normalised return")
    ax.set_ylim(0, 1.3)  # headroom for the legend
    ax.legend(fontsize=8, ncol=len(methods), loc="upper center")
    ax.set_title("CLAM vs baselines (same data, same budget)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer/shorter runs: under ~20 min on 2 cores")
    ap.add_argument("--tasks", nargs="*", default=None, help="MetaWorld and/or dm_control tasks")
    ap.add_argument("--methods", nargs="*", default=METHODS)
    ap.add_argument("--seeds", type=int, default=None, help="training seeds (default 2; --quick 1)")
    ap.add_argument("--set", action="append", default=[], help="extra clam-train --set for every run")
    ap.add_argument("--name", default=None, help="results file stem (default learning or learning-quick)")
    a = ap.parse_args()
    a.expert_episodes, a.play_episodes, a.steps, a.eval_steps = 100, 50, 200, 200
    a.eval_episodes = 40
    a.config = {"metaworld": "configs/metaworld-state.yaml", "dmc": "configs/dmc-state.yaml"}
    if a.quick:
        a.config = {"metaworld": "configs/metaworld-state-quick.yaml", "dmc": "configs/metaworld-state-quick.yaml"}
        a.eval_episodes = 20
    a.seeds = a.seeds or (1 if a.quick else 2)
    tasks = a.tasks or (METAWORLD[:4] if a.quick else METAWORLD + DMC)
    name = a.name or ("learning-quick" if a.quick else "learning")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    done = json.loads(out.read_text())["cells"] if out.exists() else []
    have = {(c["task"], c["method"], c["seed"]) for c in done}
    t0 = time.perf_counter()
    for seed in range(a.seeds):
        for task in tasks:
            env = "dmc" if task in DMC or "-" in task and not task.endswith("-v3") else "metaworld"
            for m in a.methods:
                if (task, m, seed) in have:
                    continue
                c = cell(env, task, m, seed, a)
                done.append(c)
                out.write_text(json.dumps({"machine": machine(), "cells": done}, indent=1))
                print(f"[{time.perf_counter() - t0:6.0f}s] {task:18s} {m:10s} seed {seed}: {c['score']:.2f} (train {c['train_s']} s)", flush=True)
    md, agg = table(done)
    (RESULTS / f"{name}.md").write_text(md + "\n")
    plot(agg, RESULTS / f"{name}.png")
    print(md)


def machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"


if __name__ == "__main__":
    main()
