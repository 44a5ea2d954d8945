"""Does CLAM beat its baselines on the same data? The paper's claim, measured here.

Data regimes (--regime), per task; the unlabelled set is always 100 expert episodes whose actions are
hidden from every method but the bc-expert oracle:
  rich    labelled: 50 task-agnostic play episodes, about a fifth of whose segments follow the task's
          expert with noise (so a supervised IDM has seen expert states). No pool.
  paper   the CLAM paper's setting: a pool of 1,000 observation-only episodes of the expert with a
          random-action probability drawn per episode from U(0, 1) (random to expert; trains the latent
          action model only, `clam-train --pool`); labelled: 50 low-return episodes of the same task
          (random-action probability U(0.5, 1), no clean expert segments).
  scarce  as paper, the labelled set cut to --labelled-sizes episodes (default 2 5 10 25 50): a curve.
Methods: clam, bc-play (BC on the labelled set), vq, vpt, bc-expert (oracle). Each trained with the same
config, budget and selection rule, exported with clam-export, evaluated with clam-eval over 40 seeded
episodes (success at any step; dm_control: return / scripted expert's return). --split val evaluates on
validation seeds (200000+: choose settings there), --split test on test seeds (100000+: report only).

    python benchmarks/learning.py --quick                        # rich, < 20 min on 2 cores
    python benchmarks/learning.py --regime paper --seeds 3       # hours on a CPU; --jobs 2 on 2 cores
    python benchmarks/learning.py --regime scarce --tasks pick-place-v3 --seeds 3
    python benchmarks/learning.py --obs image --tasks reach-block push-button place-block close-drawer --seeds 2 --vary-data
    python benchmarks/learning.py --obs image --tasks push-button --seeds 2 --vary-data --vary all   # visual variation

One table from several files (here: BC from v6, v7's CLAM and VPT cells, close-drawer from v8; then v9):
    python benchmarks/learning.py --name learning-rich-image-v8 --merge learning-rich-image-v6:bc-play,bc-expert \
        learning-rich-image-v7-clam:push-button,reach-block,place-block \
        learning-rich-image-v7-vpt:push-button,reach-block,place-block learning-rich-image-v8-drawer
    python benchmarks/learning.py --obs image --name learning-rich-image-v9 --merge learning-rich-image-v8 \
        learning-rich-image-v9-button-end5          # v8 with push-button on ended demonstrations (--end-after-success 5)

Resumable: finished cells are read back from benchmarks/results/learning.json and skipped.
Everything runs through the real CLIs (clam-record, clam-train, clam-export, clam-eval).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import code_version, machine  # noqa: E402

from clamkit.fileio import write_json_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "cache"
METHODS = ["clam", "bc-play", "vq", "vpt", "bc-expert"]
METAWORLD = ["reach-v3", "button-press-v3", "drawer-open-v3", "pick-place-v3", "assembly-v3"]  # last two grasp
DMC = ["reacher-easy", "cartpole-swingup"]
WIDOWX = ["reach-block", "push-button", "place-block", "close-drawer"]  # widowx-sim, the paper's real-robot tasks
IMAGE_SIZE = 64  # --obs image: camera frames recorded at this side
EPISODE_STEPS = {"metaworld": 200, "dmc": 1000, "widowx-sim": 50}  # recorded and evaluated (dm_control: full episodes)


def env_of(task: str) -> str:
    return "metaworld" if task.endswith("-v3") else "widowx-sim" if task in WIDOWX else "dmc"


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


SEEDS = {"test": 100_000, "val": 200_000}  # evaluation seeds; clam-record's are < 10,000
DATA_SEEDS = {"expert": 1000, "play": 2000, "pool": 3000, "lowret": 4000}
DRAW_STRIDE = 10_000  # recording seeds of data draw k: DATA_SEEDS + 10,000 k (below the evaluation seeds)


def record(env: str, task: str, kind: str, episodes: int, steps: int, obs: str = "state", draw: int = 0,
           vary: str | None = None, end_after: int | None = None) -> Path:
    """A cached recording. expert / play: the scripted policies; pool: noisy expert, random-action probability
    U(0, 1), observations only; lowret: noisy expert, U(0.5, 1), labelled. Seeded, so a smaller recording
    of a kind is a prefix of a larger one. obs "image" also stores IMAGE_SIZE camera frames. draw: which
    independent recording (training seed s trains on draw s, so the spread across seeds includes the data's).
    vary: widowx-sim's visual variation (clam-record --vary), drawn per episode. end_after: clam-record
    --end-after-success (episodes end that many steps after the task first succeeds)."""
    name = kind if kind in ("expert", "play", "pool") else f"{kind}-{episodes}"
    name = (name if obs == "state" else f"{name}-img{IMAGE_SIZE}") + (f"-d{draw}" if draw else "") + (f"-vary-{vary}" if vary else "")
    name += f"-end{end_after}" if end_after is not None else ""
    out = CACHE / "data" / task / name
    frames = (["--image-size", str(IMAGE_SIZE)] if obs == "image" else []) + (["--vary", vary] if vary else [])
    frames += ["--end-after-success", str(end_after)] if end_after is not None else []
    seed = DATA_SEEDS[kind] + DRAW_STRIDE * draw
    if seed + max(episodes, 1000) > SEEDS["test"]:
        raise SystemExit(f"data draw {draw} would reach the evaluation seeds ({SEEDS['test']}+): use fewer seeds")
    meta = out / "meta.json"
    if not meta.exists() or len(json.loads(meta.read_text())["episodes"]) < episodes:
        policy = {"expert": ["--policy", "expert"], "play": ["--policy", "play"],
                  "pool": ["--policy", "noisy-expert", "--noise-range", "0", "1", "--no-actions"],
                  "lowret": ["--policy", "noisy-expert", "--noise-range", "0.5", "1"]}[kind]
        sh(bin_("clam-record"), env, "--task", task, *policy, "--episodes", str(episodes),
           "--max-steps", str(steps), "--seed", str(seed), *frames, "--out", str(out), "--quiet")
    return out


def datasets(env: str, task: str, regime: str, n_lab: int, a, draw: int = 0) -> dict:
    steps = EPISODE_STEPS[env]
    rec = lambda kind, n: record(env, task, kind, n, steps, a.obs, draw, a.vary)  # noqa: E731
    d = {"unlabelled": record(env, task, "expert", a.expert_episodes, steps, a.obs, draw, a.vary, a.end_after_success)}
    if regime == "rich":
        d["labelled"] = rec("play", a.play_episodes)
    else:
        d["labelled"] = rec("lowret", n_lab)
        d["pool"] = rec("pool", a.pool_episodes)
    return d


def settings_tag(sets: list[str]) -> str:
    """The run-name suffix for --set overrides: a hash of the settings themselves (order-free), so the same settings
    under another results name reuse the runs, and different settings never share one."""
    return f"-set{hashlib.sha256(chr(10).join(sorted(sets)).encode()).hexdigest()[:8]}" if sets else ""


def cell(env: str, task: str, method: str, seed: int, regime: str, n_lab: int, a) -> dict:
    """Train, export and evaluate one (regime, labelled size, task, method, seed)."""
    draw = seed if a.vary_data else 0
    d = datasets(env, task, regime, n_lab, a, draw)
    # A run is keyed by everything that shapes it: data, method, seed, recipe and --set variants. bc-expert
    # reads neither the labelled set nor the pool, so one run serves every regime.
    data_key = "any" if method == "bc-expert" else ("rich" if regime == "rich" else f"lab{n_lab}")
    data_key += (f"-d{draw}" if draw else "") + (f"-vary-{a.vary}" if a.vary else "")
    data_key += f"-end{a.end_after_success}" if a.end_after_success is not None else ""
    variant = f"{method}-s{seed}-{Path(a.config[env]).stem}-{data_key}" + settings_tag(a.set)
    run = CACHE / "runs" / task / variant
    bundle = CACHE / "bundles" / task / variant
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    if not (run / "policy.pt").exists():
        resume = ["--resume"] if run.exists() else []  # also a run killed before its first checkpoint
        sets = [f"--set=algo={method}"] + [f"--set={s}" for s in a.set]
        pool = ["--pool", str(d["pool"])] if "pool" in d and method in ("clam", "vq") else []
        sh(bin_("clam-train"), "--config", str(ROOT / a.config[env]), "--unlabelled", str(d["unlabelled"]),
           "--labelled", str(d["labelled"]), *pool, "--out", str(run), "--seed", str(seed), *sets, *resume,
           log=run.parent / f"{variant}.train.log")
    train_s = time.perf_counter() - t0
    if not (bundle / "clam.json").exists():
        sh(bin_("clam-export"), str(run), "--out", str(bundle), "--exporter", "legacy")
    report = bundle.parent / f"{variant}.{a.split}.eval.json"
    if not report.exists():  # image bundles read the simulator's camera (clam-eval's default for them)
        sh(bin_("clam-eval"), str(bundle), "--env", f"{env}:{task}", "--episodes", str(a.eval_episodes),
           "--seed", str(SEEDS[a.split]), "--max-steps", str(EPISODE_STEPS[env]), "--json", str(report),
           *(["--robot-opt", f"vary={a.vary}"] if a.vary else []))
    r = json.loads(report.read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    probe = {k: v for k, v in summary.get("metrics", {}).items() if k.startswith(("probe/", "select/"))}
    if env != "dmc":
        score = r["success_rate"]
    else:
        expert_return = json.loads((d["unlabelled"] / "meta.json").read_text())
        score = r["mean_return"] / np.mean([e["return"] for e in expert_return["episodes"]])
    cfg = (ROOT / a.config[env]).read_bytes() + "\n".join(a.set).encode()
    # A cached run was trained by an earlier checkout: its bundle says which ("0.1.0+gSHA"); code_version is this one's.
    trained = json.loads((bundle / "clam.json").read_text()).get("provenance", {}).get("code_version", "")
    return {"env": env, "task": task, "obs": a.obs, "method": method, "seed": seed, "regime": regime,
            "labelled_episodes": n_lab, "data_draw": draw, "vary": a.vary,
            "end_after_success": a.end_after_success, "split": a.split, "score": float(score), "episodes": a.eval_episodes,
            "provenance": {"config": a.config[env], "set": a.set, "config_sha256": hashlib.sha256(cfg).hexdigest()[:16],
                           "code_version": code_version(), "trained_code_version": trained.rpartition("+g")[2] or None,
                           "train_s": round(summary.get("seconds", train_s), 1),
                           "stage_s": {k: v["seconds"] for k, v in summary.get("stages", {}).items()}, "load_at_start": round(load0, 2),
                           "machine": machine()},
            "latency_p99_ms": r.get("latency", {}).get("p99_ms"), "probe": probe}


def se(xs: list[float]) -> float:
    """Standard error of the mean across training seeds (nan with one seed)."""
    return float(np.std(xs, ddof=1) / np.sqrt(len(xs))) if len(xs) > 1 else float("nan")


def aggregate(cells: list[dict]) -> dict:
    """{(task or "mean", method): (mean, se, seeds)}; the mean row averages tasks within a seed first."""
    agg, by = {}, {}
    for c in cells:
        by.setdefault((c["task"], c["method"]), {})[c["seed"]] = c["score"]
    for (t, m), per_seed in by.items():
        xs = list(per_seed.values())
        agg[(t, m)] = (float(np.mean(xs)), se(xs), len(xs))
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    for m in dict.fromkeys(c["method"] for c in cells):
        seeds = set.intersection(*[set(by.get((t, m), {})) for t in tasks])  # seeds with every task
        xs = [np.mean([by[(t, m)][s] for t in tasks]) for s in sorted(seeds)]
        if xs:
            agg[("mean", m)] = (float(np.mean(xs)), se(xs), len(xs))
    return agg


def table(cells: list[dict]) -> str:
    agg = aggregate(cells)
    tasks = list(dict.fromkeys(c["task"] for c in cells)) + ["mean"]
    methods = [m for m in METHODS if any(c["method"] == m for c in cells)]
    lines = ["| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for t in tasks:
        row = []
        for m in methods:
            mean, err, n = agg.get((t, m), (np.nan, np.nan, 0))
            row.append("–" if not n else f"{mean:.2f} ± {err:.2f} ({n})" if np.isfinite(err) else f"{mean:.2f} (1)")
        lines.append(f"| {t} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n\nmean ± standard error across training seeds (number of seeds)"


def plot(cells: list[dict], path: Path, regime: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if any(c["method"] == m for c in cells)]
    if regime == "scarce":  # success vs labelled episodes, averaged over tasks, SE across seeds
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        sizes = sorted({c["labelled_episodes"] for c in cells})
        by_size = {n: aggregate([c for c in cells if c["labelled_episodes"] == n]) for n in sizes}
        for m in methods:
            pts = [(n, *agg[("mean", m)][:2]) for n, agg in by_size.items() if ("mean", m) in agg]
            if pts:
                x, y, e = zip(*pts)
                ax.errorbar(x, y, yerr=np.nan_to_num(e), label=m, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("labelled (low-return) episodes")
        ax.set_ylabel("mean success (tasks)")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
        ax.set_title(f"scarce labels: {', '.join(dict.fromkeys(c['task'] for c in cells))}", fontsize=8)
    else:
        agg = aggregate(cells)
        tasks = list(dict.fromkeys(c["task"] for c in cells)) + ["mean"]
        fig, ax = plt.subplots(figsize=(1.6 * len(tasks) + 2, 3.6))
        w = 0.8 / len(methods)
        for i, m in enumerate(methods):
            xs = np.arange(len(tasks)) + i * w
            ax.bar(xs, [agg.get((t, m), (np.nan,))[0] for t in tasks], w,
                   yerr=[np.nan_to_num(agg.get((t, m), (0, 0))[1]) for t in tasks], label=m, capsize=2)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - w / 2, tasks, rotation=20, fontsize=8)
        ax.set_ylabel("success rate / normalised return")
        ax.set_ylim(0, 1.3)  # headroom for the legend
        ax.legend(fontsize=8, ncol=len(methods), loc="upper center")
        ax.set_title(f"regime {regime}: CLAM vs baselines (same data, budget, selection; SE across seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="rich regime, one-minute recipe, 1 seed, 20 episodes")
    ap.add_argument("--regime", choices=["rich", "paper", "scarce"], default="rich")
    ap.add_argument("--split", choices=["val", "test"], default="test",
                    help="evaluation seeds: val (200000+) to choose settings, test (100000+) to report")
    ap.add_argument("--tasks", nargs="*", default=None, help="MetaWorld, dm_control and/or widowx-sim tasks")
    ap.add_argument("--obs", choices=["state", "image"], default="state",
                    help=f"image: record {IMAGE_SIZE}x{IMAGE_SIZE} camera frames and train on them "
                         "(default recipe configs/widowx-image-cpu.yaml; evaluated from the sim camera)")
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=None, help="training seeds (default 3; --quick 1)")
    ap.add_argument("--labelled-sizes", type=int, nargs="*", default=[2, 5, 10, 25, 50], help="scarce: labelled episodes")
    ap.add_argument("--config", dest="recipe", default=None, help="clam-train recipe for every method (default: by env)")
    ap.add_argument("--set", action="append", default=[], help="extra clam-train --set for every run")
    ap.add_argument("--name", default=None, help="results file stem (default learning-REGIME[-quick])")
    ap.add_argument("--episodes", type=int, default=None, help="evaluation episodes per cell (default 40; --quick 20)")
    ap.add_argument("--vary-data", action="store_true",
                    help="training seed s trains on its own recordings (data draw s), so the +- across seeds includes "
                         "the data's variance; default: every seed shares draw 0")
    ap.add_argument("--jobs", type=int, default=1, help="cells run in parallel (one core each)")
    ap.add_argument("--vary", default=None, help="widowx-sim: record and evaluate with this visual variation "
                                                  "(clam-record --vary: all, or e.g. colors,lighting)")
    ap.add_argument("--end-after-success", type=int, default=None, metavar="K",
                    help="the expert (unlabelled) recordings end K steps after the task first succeeds "
                         "(clam-record --end-after-success); default: full episodes")
    ap.add_argument("--report", action="store_true", help="only rewrite the .md and .png from the results file")
    ap.add_argument("--merge", nargs="+", default=None, metavar="STEM",
                    help="build --name's results file from these results files' cells (only --tasks / --methods, "
                         "if given; STEM:NAME,... takes only the cells of the methods and tasks named from that file; a "
                         "later file's cell replaces an earlier one's), then report; trains nothing")
    a = ap.parse_args()
    a.expert_episodes, a.play_episodes, a.pool_episodes = 100, 50, 1000
    a.config = {"metaworld": "configs/metaworld-state.yaml", "dmc": "configs/dmc-state.yaml",
                "widowx-sim": "configs/metaworld-state-quick.yaml"}
    if a.quick:
        a.config = dict.fromkeys(a.config, "configs/metaworld-state-quick.yaml")
    if a.obs == "image":
        a.config = dict.fromkeys(a.config, "configs/widowx-image-cpu.yaml")
    if a.recipe:
        a.config = dict.fromkeys(a.config, a.recipe)
    a.eval_episodes = a.episodes or (20 if a.quick else 40)
    a.seeds = a.seeds or (1 if a.quick else 3)
    a.methods = a.methods or (METHODS if a.regime == "rich" else ["clam", "bc-play", "vpt", "bc-expert"])
    tasks = a.tasks or (METAWORLD[:4] if a.quick else METAWORLD)
    sizes = a.labelled_sizes if a.regime == "scarce" else [a.play_episodes]
    name = a.name or (f"learning-{a.regime}" + ("-image" if a.obs == "image" else "") + ("-quick" if a.quick else ""))
    name += "-val" if a.split == "val" and not name.endswith("-val") else ""  # validation cells never pose as test
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    done = json.loads(out.read_text())["cells"] if out.exists() else []
    key = lambda c: (c.get("regime", "rich"), c.get("labelled_episodes", 50), c["task"], c["method"], c["seed"])  # noqa: E731
    if a.merge:
        return report(merge(a.merge, out, key, a.tasks, a.methods), name, a.regime)
    if a.report:
        return report(done, name, a.regime)
    have = {key(c) for c in done}
    todo = [(env_of(t), t, m, s, a.regime, n) for s in range(a.seeds) for n in sizes for t in tasks for m in a.methods
            if (a.regime, n, t, m, s) not in have]
    t0 = time.perf_counter()
    # Data first, one recording at a time per task (parallel across tasks): cells then only read it.
    with ThreadPoolExecutor(a.jobs) as ex:
        draws = range(a.seeds) if a.vary_data else [0]
        list(ex.map(lambda t: [datasets(env_of(t), t, a.regime, n, a, k) for n in sizes for k in draws], tasks))
    print(f"[{time.perf_counter() - t0:6.0f}s] data ready; {len(todo)} cells to run", flush=True)
    with ThreadPoolExecutor(a.jobs) as ex:
        futures = {ex.submit(cell, *job, a): job for job in todo}
        for f in as_completed(futures):
            c = f.result()
            done = save_cell(out, c, key)
            print(f"[{time.perf_counter() - t0:6.0f}s] {c['regime']}/{c['labelled_episodes']} {c['task']:18s} {c['method']:10s} "
                  f"seed {c['seed']}: {c['score']:.2f} (train {c['provenance']['train_s']} s)", flush=True)
    report(done, name, a.regime)


def save_cell(out: Path, c: dict, key) -> list[dict]:
    """Add one cell to the results file under a lock, re-reading it first: several invocations (e.g. one per
    method with its own --set) may share a file. Returns every cell in it."""
    import fcntl

    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cells = json.loads(out.read_text())["cells"] if out.exists() else []
        cells = [x for x in cells if key(x) != key(c)] + [c]
        write_json_atomic(out, {"machine": machine(), "cells": cells})
    return cells


def merge(stems: list[str], out: Path, key, tasks: list[str] | None, methods: list[str] | None) -> list[dict]:
    """One table from several results files (e.g. one per method, each run with its own --set): their cells, each
    with its own provenance, filtered by task and method; a later file's cell replaces an earlier one's."""
    cells: dict = {}
    for spec in stems:
        # STEM:bc-play,push-button takes just those methods' cells, of just those tasks, from that file
        stem, _, only = spec.partition(":")
        only_methods = {x for x in only.split(",") if x in METHODS}
        only_tasks = {x for x in only.split(",") if x and x not in METHODS}
        path = RESULTS / f"{stem}.json"
        if not path.exists():
            raise SystemExit(f"--merge: no results file {path}")
        for c in json.loads(path.read_text())["cells"]:
            if (tasks is None or c["task"] in tasks) and (methods is None or c["method"] in methods) and \
                    (not only_methods or c["method"] in only_methods) and (not only_tasks or c["task"] in only_tasks):
                cells[key(c)] = c | {"merged_from": stem}
    if not cells:
        raise SystemExit(f"--merge: no cells for tasks {tasks} and methods {methods} in {', '.join(stems)}")
    write_json_atomic(out, {"machine": machine(), "cells": list(cells.values())})
    return list(cells.values())


def diagnostics(cells: list[dict]) -> str:
    """Where the action is lost, per method (means over cells; hidden expert actions, diagnostic only): the
    relabel error per action dimension and the deployed policy's open-loop error on held-out expert episodes."""
    methods = [m for m in METHODS if any(c["method"] == m for c in cells)]
    dims = sorted({k for c in cells for k in c["probe"] if k.startswith("probe/relabel_mse_dim")})
    cols = [d.rsplit("_", 1)[-1] for d in dims] + ["policy", "LAM step"]
    lines = ["| method | relabel MSE " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for m in methods:
        row = []
        for k in dims + ["probe/policy_action_mse", "select/lam_step"]:
            xs = [c["probe"][k] for c in cells if c["method"] == m and k in c["probe"]]
            row.append(f"{np.mean(xs):.3g}" if xs else "–")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def with_paper_cells(done: list[dict]) -> list[dict]:
    """The scarce curve ends at the paper regime's 50 labelled episodes: same data, same runs."""
    if not (RESULTS / "learning-paper.json").exists():
        return done
    paper = json.loads((RESULTS / "learning-paper.json").read_text())["cells"]
    sizes, tasks, methods = ({c[k] for c in done} for k in ("labelled_episodes", "task", "method"))
    return done + [c for c in paper if c["task"] in tasks and c["method"] in methods and c["labelled_episodes"] not in sizes]


def report(done: list[dict], name: str, regime: str) -> None:
    if regime == "scarce":
        done = with_paper_cells(done)
    parts = []
    for n in sorted({c.get("labelled_episodes", 50) for c in done}):
        cells = [c for c in done if c.get("labelled_episodes", 50) == n]
        md = table(cells)
        parts.append(f"### {regime}, {n} labelled episodes\n\n{md}\n\n{diagnostics(cells)}\n")
    (RESULTS / f"{name}.md").write_text("\n".join(parts))
    plot(done, RESULTS / f"{name}.png", regime)
    print("\n".join(parts))


if __name__ == "__main__":
    main()
