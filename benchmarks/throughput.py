"""Training throughput: how close does clam-train get to the speed of the bare torch math?

For the state config (metaworld-state.yaml) and the pixel config (metaworld-image.yaml, 64x64) this
runs the real trainer in-process (Run, load_data, CLAM, engine.run_stages: the code clam-train runs,
with logging, probes, selection and checkpoints) on a synthetic dataset, with timers wrapped around
the trainer's own functions. For the CLAM stage-1 LAM step and the latent policy stage:

  step      each Stage.step call: sampling + batch gathering/preprocessing + forward/backward/clip/AdamW,
  data      the part of each step spent in Sampler.__call__ and windows/obs/actions: the data wait
            of this synchronous trainer (nothing prefetches),
  probes    each Stage.evaluate call (held-out probes, disagreement, model selection), and the
            evaluation passes inside it,
  engine    what run_stages does between steps (metrics, TensorBoard, progress), and checkpoints.

The ceiling is a minimal hand-written loop on copies of the same modules: the same loss module,
AdamW settings, batch size and grad clipping, over batches pre-sampled into memory (no sampling, no
logging, no probes). After the real run, the stage's own step function and the minimal step are
timed in interleaved blocks (A/B), so that load from other work hits both alike.

  trainer/minimal (target >= 90%) = minimal step / trainer step at the config's cadence, where the
      latter = A/B step + engine per step + probe / eval_every + checkpoint / ckpt_every
      (short CPU runs reach the pixel config's eval_every of 250 steps only at their last step, so a
      probe is measured once and amortised);
  data-wait share (target <= 10%) = data time / step time over every timed trainer step.

A sample is one window (LAM: unlabelled + labelled windows per step). CPU only, 1 torch thread by
default (--threads); GPU figures need a GPU run (on CUDA these timers would need syncs).

    python benchmarks/throughput.py --quick     # ~5 min on 2 cores
    python benchmarks/throughput.py             # longer stages

Resumable: finished (config) cells are read back from benchmarks/results/throughput[-quick].json.
"""

from __future__ import annotations

import argparse
import copy
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import ROOT, METAWORLD_ACTION, Results, image_spec, load, state_spec, synthetic_dataset  # noqa: E402

TARGETS = {"trainer_over_minimal": 0.90, "data_wait_share": 0.10}
WARMUP = 3  # first steps of a stage left out of the per-step figures (allocator, lazy init)


def cells(quick: bool) -> dict:
    """name -> config, dataset sizes, step counts of the real run, A/B blocks (CPU: the pixel LAM step is ~10 s at batch 128)."""
    return {
        "state": {"config": "configs/metaworld-state.yaml", "obs": state_spec(39),
                  "unl": (100, 200), "lab": (45, 200),  # episodes x steps, the config's intended data size
                  "steps": {"idm": 1, "lam": 100 if quick else 500, "policy": 250 if quick else 1000},
                  "ab": {"lam": (25, 4) if quick else (50, 10), "policy": (25, 10) if quick else (50, 20)}},
        "image64": {"config": "configs/metaworld-image.yaml", "obs": image_spec(64), "sets": ["data.image_size=64"],
                    "unl": (30, 100) if quick else (100, 200), "lab": (15, 100) if quick else (45, 200),
                    "steps": {"idm": 1, "lam": 3 if quick else 20, "policy": 10 if quick else 100},
                    "ab": {"lam": (3, 1) if quick else (5, 2), "policy": (5, 5) if quick else (10, 10)}},
    }


# ----------------------------------------------------------------------------- instrumentation


def clock() -> np.ndarray:
    """(wall, process CPU) seconds. With 1 torch thread the trainer's work is this process's CPU time,
    which other jobs on a shared machine do not inflate (they do inflate wall time)."""
    return np.array([time.perf_counter(), time.process_time()])


class Probe:
    """Timers wrapped around the trainer's own functions; data time counts only inside Stage.step.
    Every duration is a (wall, cpu) pair of seconds (see clock)."""

    def __init__(self):
        self.in_step = False
        self.data = np.zeros(2)
        self.rec: dict[str, dict] = {}

    def stage(self, name: str) -> dict:
        return self.rec.setdefault(name, {"step_s": [], "data_s": [], "eval_s": [], "eval_parts_s": [], "first": None,
                                          "end_at": None, "end_s": None, "ckpt_s": []})

    def timed_data(self, fn):
        def wrapper(*args, **kw):
            if not self.in_step:
                return fn(*args, **kw)
            t0 = clock()
            try:
                return fn(*args, **kw)
            finally:
                self.data += clock() - t0
        return wrapper

    def instrument(self, algo, run) -> None:
        from clamkit.trainer.data import Sampler

        Sampler.__call__ = self.timed_data(Sampler.__call__)  # this process only
        for name in ("windows", "obs", "actions"):
            setattr(algo, name, self.timed_data(getattr(algo, name)))
        batched = algo.batched
        self.parts = None

        def timed_batched(fn, ids):  # each evaluation pass of a probe, in call order
            t0 = clock()
            out = batched(fn, ids)
            if self.parts is not None:
                self.parts.append(clock() - t0)
            return out
        algo.batched = timed_batched
        for st in algo.stages:
            rec = self.stage(st.name)
            if st.step is not None:
                st.step = self._step(st.step, rec)
            if st.evaluate is not None:
                st.evaluate = self._eval(st.evaluate, rec)
            st.end = self._end(st.end, rec)
        save = run.save_checkpoint

        def save_checkpoint(algo_, stage, step, global_step):
            t0 = clock()
            save(algo_, stage, step, global_step)
            dt = clock() - t0
            mid = step > 0  # every run.ckpt_every steps; step 0 of the next stage = the stage-end checkpoint
            self.stage(algo.stages[stage if mid else stage - 1].name)["ckpt_s"].append((dt, mid))
        run.save_checkpoint = save_checkpoint

    def _step(self, fn, rec):
        def step(i):
            if rec["first"] is None:
                rec["first"] = clock()
            self.in_step, self.data = True, np.zeros(2)
            t0 = clock()
            out = fn(i)
            rec["step_s"].append(clock() - t0)
            rec["data_s"].append(self.data)
            self.in_step = False
            return out
        return step

    def _eval(self, fn, rec):
        def evaluate(i):
            self.parts = []
            t0 = clock()
            out = fn(i)
            rec["eval_s"].append(clock() - t0)
            rec["eval_parts_s"].append(self.parts)
            self.parts = None
            return out
        return evaluate

    @staticmethod
    def _end(fn, rec):
        def end():
            rec["end_at"] = clock()
            out = fn() if fn is not None else {}
            rec["end_s"] = clock() - rec["end_at"]
            return out
        return end


# ----------------------------------------------------------------------------- the minimal loop


def minimal_step(loss_mod, groups: list[dict], batches: list[tuple], cfg):
    """The ceiling, one step per call: forward, backward, clip, AdamW over pre-sampled in-memory batches."""
    import torch

    opt = torch.optim.AdamW(groups, weight_decay=cfg.optim.weight_decay)
    params = [p for g in groups for p in g["params"]]

    def step(i: int) -> None:
        out = loss_mod(*batches[i % len(batches)])
        loss = out[0] if isinstance(out, tuple) else out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        opt.step()
    return step


def minimal_lam(algo, cfg, n_batches: int = 4):
    """Copies of the IDM, FDM and decoder, LAMLoss, the LAM optimiser's two groups."""
    from clamkit.trainer.clam import LAMLoss
    from clamkit.trainer.data import Sampler

    d = algo.data
    su = Sampler("bench/u", algo.unl_sampler.pool, cfg.optim.batch_size, 123, 0)
    sl = Sampler("bench/l", algo.lab_sampler.pool, cfg.optim.batch_size, 123, 0)
    batches = []
    for _ in range(n_batches):
        u, l = su(), sl()
        batches.append((algo.windows(d.unl, u), algo.windows(d.lab, l), algo.actions(d.lab, l)))
    idm, fdm, dec = copy.deepcopy(algo.idm), copy.deepcopy(algo.fdm), copy.deepcopy(algo.decoder)
    loss = LAMLoss(idm, fdm, dec, cfg.lam.weight, cfg.lam.fdm_on_labelled)
    groups = [{"params": list(idm.parameters()) + list(fdm.parameters()), "lr": cfg.optim.lr},
              {"params": list(dec.parameters()), "lr": cfg.optim.decoder_lr}]
    return minimal_step(loss, groups, batches, cfg)


def minimal_policy(algo, cfg, n_batches: int = 4):
    """A copy of the latent policy, MSE to the relabels, its own AdamW."""
    import torch

    from clamkit.trainer.common import MSELoss
    from clamkit.trainer.data import Sampler

    d = algo.data
    s = Sampler("bench/p", d.unl.window_ids(d.unl_train), cfg.optim.batch_size, 123, 0)
    batches = []
    for _ in range(n_batches):
        ids = s()
        batches.append((algo.obs(d.unl, ids), algo.stage_data.relabels[torch.from_numpy(ids)]))
    policy = copy.deepcopy(algo.policy)
    return minimal_step(MSELoss(policy), [{"params": list(policy.parameters()), "lr": cfg.optim.lr}], batches, cfg)


def ab(trainer_step, minimal, blocks: int, per: int, rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interleaved blocks (trainer, minimal, minimal, trainer, ...) after one untimed step of each, so
    load from other processes hits both alike. trainer_step is the stage's own (instrumented) step."""
    trainer_step(10_000)
    minimal(0)
    n0 = len(rec["step_s"])
    mins = []
    for b in range(blocks):
        for kind in (("trainer", "minimal") if b % 2 == 0 else ("minimal", "trainer")):
            for i in range(per):
                if kind == "trainer":
                    trainer_step(10_001 + i)  # timed (and its data time) by the Probe wrapper
                else:
                    t0 = clock()
                    minimal(i)
                    mins.append(clock() - t0)
    return np.asarray(rec["step_s"][n0:]), np.asarray(rec["data_s"][n0:]), np.asarray(mins)  # (n, 2) each


def gather_ms(data, batch: int, repeats: int = 5) -> dict:
    """FrameStore.get of one LAM batch of windows, RAM vs memmap (data.storage): the data path alone."""
    from clamkit.trainer.data import FrameStore

    out = {}
    ids = np.random.default_rng(0).choice(data.unl.window_ids(), batch)
    for mode, in_memory in (("ram", True), ("memmap", False)):
        store = FrameStore("bench", data.unl.episodes, data.key, in_memory, data.unl.device, with_actions=False)
        store.get(ids, (-1, 0, 1))
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            store.get(ids, (-1, 0, 1))
            ts.append(time.perf_counter() - t0)
        out[f"{mode}_ms"] = round(float(np.median(ts)) * 1e3, 3)
    return out | {"windows": batch}


# ----------------------------------------------------------------------------- one config


def measure(name: str, spec: dict, work: Path, threads: int) -> dict:
    import torch

    from clamkit.config import load_config
    from clamkit.trainer.clam import CLAM
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.data import Sampler, load_data
    from clamkit.trainer.engine import Run, run_stages
    from clamkit.trainer.train import resolve

    (ue, ut), (le, lt) = spec["unl"], spec["lab"]
    unl = synthetic_dataset(work / "data" / name / f"unl-{ue}x{ut}", spec["obs"], METAWORLD_ACTION, ue, ut, False, seed=1, fps=80)
    lab = synthetic_dataset(work / "data" / name / f"lab-{le}x{lt}", spec["obs"], METAWORLD_ACTION, le, lt, True, seed=2, fps=80)
    steps = spec["steps"]
    sets = [*spec.get("sets", []), f"idm.steps={steps['idm']}", f"lam.steps={steps['lam']}", f"policy.steps={steps['policy']}",
            f"run.threads={threads}", "run.progress=false", "run.device=cpu"]
    cfg, _ = load_config(TrainConfig, str(ROOT / spec["config"]), sets)
    out = work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)  # a fresh run every time: a resumed one would skip the stages
    original_call = Sampler.__call__
    t0 = time.perf_counter()
    run = Run(cfg, out, resume=False)
    probe = Probe()
    try:
        data = load_data(cfg, [str(unl)], [str(lab)], run.device)
        resolve(cfg, data)
        run.fingerprint = data.fingerprint
        algo = CLAM(cfg, data, run)
        run.start(cfg, 0)
        setup_s = time.perf_counter() - t0
        probe.instrument(algo, run)
        t1 = time.perf_counter()
        summary = run_stages(run, algo, None)  # the real thing: clam-train's loop
        trainer_s = time.perf_counter() - t1
        torch.set_num_threads(threads)
        # Step for step against the ceiling, interleaved (the stages' own step functions, called again).
        stage_steps = {st.name: st.step for st in algo.stages}
        abr = {}
        for sname, minimal in (("lam", minimal_lam), ("policy", minimal_policy)):
            t2 = time.perf_counter()
            abr[sname] = (*ab(stage_steps[sname], minimal(algo, cfg), *spec["ab"][sname], probe.rec[sname]),
                          time.perf_counter() - t2)
        gather = gather_ms(data, 2 * cfg.optim.batch_size)
    finally:
        Sampler.__call__ = original_call
        run.close()
        shutil.rmtree(out, ignore_errors=True)  # checkpoints of a throwaway run: hundreds of MB

    cell = {"config": spec["config"], "sets": sets, "threads": threads, "batch_size": cfg.optim.batch_size,
            "data": {"unlabelled": f"{ue} x {ut}", "labelled": f"{le} x {lt}", "storage": "ram" if data.unl.frames is not None else "memmap"},
            "setup_s": round(setup_s, 2), "run_stages_s": round(trainer_s, 2), "gather_lam_batch": gather,
            "stages_summary": summary["stages"], "stages": {}}
    rec = probe.rec
    for sname, samples in (("lam", 2 * cfg.optim.batch_size), ("policy", cfg.optim.batch_size)):
        r, n, stage_cfg = rec[sname], steps[sname], getattr(cfg, sname)
        t_step, t_data, t_min, ab_s = abr[sname]
        c = {"samples_per_step": samples, "eval_every": stage_cfg.eval_every, "ckpt_every": cfg.run.ckpt_every,
             "log_every": cfg.run.log_every, "run_steps": n, "run_evals": len(r["eval_s"]),
             "ab": {"blocks": spec["ab"][sname][0], "steps_per_block": spec["ab"][sname][1], "seconds": round(ab_s, 1),
                    "trainer_steps": len(t_step), "minimal_steps": len(t_min)},
             "stage_end_s": round(float(r["end_s"][0]), 2)}
        for k, clk in enumerate(("wall", "cpu")):
            step_run = np.asarray(r["step_s"][:n])[:, k]
            data_run = np.asarray(r["data_s"][:n])[:, k]
            evals = np.asarray(r["eval_s"])[:, k]
            ckpts = [(dt[k], mid) for dt, mid in r["ckpt_s"]]
            loop_s = (r["end_at"] - r["first"])[k]  # first step .. stage end: steps, probes and engine work in between
            engine_ms = (loop_s - step_run.sum() - evals.sum() - sum(dt for dt, mid in ckpts if mid)) / n * 1e3
            eval_ms = float(evals.mean()) * 1e3
            ckpt_ms = float(np.mean([dt for dt, _ in ckpts])) * 1e3 if ckpts else 0.0
            step, mins, dat = t_step[:, k], t_min[:, k], t_data[:, k]
            step_ms, minimal_ms = float(step.mean()) * 1e3, float(mins.mean()) * 1e3
            cadence_ms = step_ms + engine_ms + eval_ms / stage_cfg.eval_every + ckpt_ms / cfg.run.ckpt_every
            w = min(WARMUP, n - 1)  # the real run's first steps are left out of its per-step figures
            all_step, all_data = np.concatenate([step_run[w:], step]), np.concatenate([data_run[w:], dat])
            c[clk] = {
                "run": {"step_ms_mean": round(float(step_run[w:].mean()) * 1e3, 3), "loop_s": round(float(loop_s), 2),
                        "samples_per_s": round(n * samples / loop_s, 1)},
                "trainer_step_ms": {"mean": round(step_ms, 3), "p50": round(float(np.median(step)) * 1e3, 3)},
                "minimal_step_ms": {"mean": round(minimal_ms, 3), "p50": round(float(np.median(mins)) * 1e3, 3)},
                "data_ms": round(float(all_data.mean()) * 1e3, 3),
                "compute_ms": round(float((all_step - all_data).mean()) * 1e3, 3),
                "engine_ms_per_step": round(engine_ms, 3), "eval_ms": round(eval_ms, 1),
                "eval_parts_ms": [round(x[k] * 1e3, 1) for x in r["eval_parts_s"][-1]] if r["eval_parts_s"] else [],
                "ckpt_ms": round(ckpt_ms, 1),
                "trainer_ms_per_step_at_cadence": round(cadence_ms, 3),
                "probe_share_at_cadence": round(eval_ms / stage_cfg.eval_every / cadence_ms, 4),
                "trainer_samples_per_s": round(samples / cadence_ms * 1e3, 1),
                "trainer_steps_only_samples_per_s": round(samples / step_ms * 1e3, 1),
                "minimal_samples_per_s": round(samples / minimal_ms * 1e3, 1),
                "trainer_over_minimal": round(minimal_ms / cadence_ms, 4),
                "steps_only_over_minimal": round(minimal_ms / step_ms, 4),
                "data_wait_share": round(float(all_data.sum() / all_step.sum()), 4),
            }
        cell["stages"][sname] = c
    for sname in ("idm", "relabel"):  # one-off stages, for the record
        cell["stages"][sname] = {"stage_end_s": round(float(rec[sname]["end_s"][0]), 2), "steps": steps.get(sname, 0),
                                 "eval_ms": [round(x[0] * 1e3, 1) for x in rec[sname]["eval_s"]]}
    return cell


# ----------------------------------------------------------------------------- report


def plot(res: Results, names: list[str], clk: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels, trainer, ceiling, parts = [], [], [], []
    for n in names:
        for s in ("lam", "policy"):
            st = res[n]["stages"][s]
            c = st[clk]
            labels.append(f"{n}\n{s}")
            trainer.append(c["trainer_samples_per_s"])
            ceiling.append(c["minimal_samples_per_s"])
            per = c["trainer_ms_per_step_at_cadence"]
            data, probes = c["data_ms"] / per, c["eval_ms"] / st["eval_every"] / per
            engine = (c["engine_ms_per_step"] + c["ckpt_ms"] / st["ckpt_every"]) / per
            parts.append([data, 1.0 - data - probes - engine, probes, engine])  # compute: the rest of the step
    x = np.arange(len(labels))
    ax = axes[0]
    b1 = ax.bar(x - 0.2, trainer, 0.4, label="clam-train (at config cadence)", color="#1f77b4")
    b2 = ax.bar(x + 0.2, ceiling, 0.4, label="minimal torch loop", color="#aaaaaa")
    ax.bar_label(b1, labels=[f"{t / m:.0%}" for t, m in zip(trainer, ceiling)], fontsize=8)
    ax.bar_label(b2, fmt="%.0f", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("samples/s (windows)")
    ax.set_title("trainer vs ceiling (label: trainer/minimal)")
    ax.legend(fontsize=7)
    ax = axes[1]
    parts = np.asarray(parts)
    bottom = np.zeros(len(labels))
    for j, (lab, col) in enumerate([("data wait", "#d62728"), ("forward/backward/step", "#1f77b4"),
                                    ("probes (amortised)", "#ff7f0e"), ("engine + checkpoints", "#2ca02c")]):
        ax.bar(x, parts[:, j], 0.6, bottom=bottom, label=lab, color=col)
        bottom += parts[:, j]
    ax.axhline(TARGETS["data_wait_share"], color="k", ls="--", lw=0.8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("share of trainer time per step")
    ax.set_ylim(0, 1.25)
    ax.set_title("where a trainer step goes (dashed: data-wait target)")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    m = res.data["machine"]
    fig.suptitle(f"clam-train throughput, CPU {m['cpu']} ({m['cores']} cores), {res[names[0]]['threads']} torch thread(s), "
                 f"{clk} time, load {load()[0]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short stages and a smaller pixel dataset (~5 min in all)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads (trainer and minimal loop alike)")
    p.add_argument("--only", nargs="*", default=None, help="configs to run (state, image64)")
    p.add_argument("--redo", action="store_true", help="measure every cell again (default: skip finished ones)")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    name = "throughput-quick" if a.quick else "throughput"
    res = Results(a.out / f"{name}.json", {"benchmark": "throughput", "mode": "quick" if a.quick else "full",
                                           "targets": TARGETS, "loadavg_start": load(), "device": "cpu"}, redo=a.redo)
    work = a.out / "cache" / "throughput"
    t_all = time.perf_counter()
    names = a.only or list(cells(a.quick))
    for n in names:
        key = f"{n}/threads{a.threads}"
        if not res.have(key):
            t0 = time.perf_counter()
            res.put(key, measure(n, cells(a.quick)[n], work, a.threads))
            print(f"{key}: {time.perf_counter() - t0:.0f} s", flush=True)
    keys = [f"{n}/threads{a.threads}" for n in names]
    # Judged on process CPU time with 1 thread (robust to other jobs on a shared machine); wall time beside it.
    clk = "cpu" if a.threads == 1 else "wall"
    results = {}
    for k in keys:
        for s in ("lam", "policy"):
            c = res[k]["stages"][s]
            results[f"{k}/{s}"] = {
                "clock": clk,
                "trainer_over_minimal": {"value": c[clk]["trainer_over_minimal"], "wall": c["wall"]["trainer_over_minimal"],
                                         "target": f">= {TARGETS['trainer_over_minimal']}",
                                         "pass": c[clk]["trainer_over_minimal"] >= TARGETS["trainer_over_minimal"]},
                "data_wait_share": {"value": c[clk]["data_wait_share"], "wall": c["wall"]["data_wait_share"],
                                    "target": f"<= {TARGETS['data_wait_share']}",
                                    "pass": c[clk]["data_wait_share"] <= TARGETS["data_wait_share"]}}
    res.data.update(results=results, judged_on=clk, loadavg_end=load(), seconds=round(time.perf_counter() - t_all, 1), used_cells=keys)
    res.save()
    png = a.out / f"{name}.png"
    plot(res, keys, clk, png)

    print(f"\n{clk} time     {'trainer/s':>10} {'minimal/s':>10} {'ratio':>6} {'(wall)':>6} {'steps-only':>10} {'data':>6} {'probes':>7}  pass")
    for k in keys:
        for s in ("lam", "policy"):
            c, r = res[k]["stages"][s], results[f"{k}/{s}"]
            ok = r["trainer_over_minimal"]["pass"] and r["data_wait_share"]["pass"]
            print(f"{k + '/' + s:<26} {c[clk]['trainer_samples_per_s']:>10.0f} {c[clk]['minimal_samples_per_s']:>10.0f} "
                  f"{c[clk]['trainer_over_minimal']:>6.0%} {c['wall']['trainer_over_minimal']:>6.0%} "
                  f"{c[clk]['steps_only_over_minimal']:>10.0%} {c[clk]['data_wait_share']:>6.1%} "
                  f"{c[clk]['probe_share_at_cadence']:>7.1%}  {'yes' if ok else 'NO'}")
    print(f"samples/s in windows; ratio at the config's probe/checkpoint cadence; load {load()}; {res.path} {png}")


if __name__ == "__main__":
    main()
