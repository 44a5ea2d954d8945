"""The machinery around every algorithm: seeding, device, DDP, logging, checkpoints, exact resume.

An algorithm (clam.py, bc.py, vpt.py, vq.py) is a list of Stages run in order. Each stage is a
loop of `steps` optimisation steps with a periodic `evaluate` (probes, model selection) and an
`end` (restore the selected weights, relabel, ...). Stages with 0 steps are pure `end`s.

Exact resume: a checkpoint (RUN/checkpoint.pt, written atomically every run.ckpt_every steps and at
every stage end) holds the stage and step, every module's and optimiser's state, each rank's
sampler Generator and RNG states, and what stages hand to later ones (StageData: relabels, selected weights). A run
killed at any point and resumed with --resume ends with the same parameters as an uninterrupted one.

Scale-out: under torchrun (WORLD_SIZE > 1) the process group is gloo on CPU and nccl on CUDA; the
loss modules are wrapped in DistributedDataParallel; each rank's samplers are seeded with its rank,
so ranks draw different data; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from clamkit.config import save_config, to_dict
from clamkit.errors import UserError
from clamkit.fileio import write_atomic
from clamkit.trainer.integrity import seal, verify

log = logging.getLogger(__name__)
CKPT_NAME = "checkpoint.pt"
CKPT_FORMAT = "clamkit-checkpoint"


def stage_summary(steps: int, seconds: float) -> dict:
    """Steps, seconds, steps/s and the process's peak resident memory so far (MiB; the peak up to the end of
    this stage, so a stage's own peak when it is the largest yet)."""
    import resource

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"steps": steps, "seconds": round(seconds, 2), "steps_per_s": round(steps / seconds, 1) if steps and seconds > 0 else None,
            "peak_rss_mib": round(peak_kib / 1024, 1)}


@dataclass
class Stage:
    """`steps` calls of step(i) -> scalars; evaluate(i) -> scalars every eval_every steps and at the last; end() -> scalars."""

    name: str
    steps: int
    step: Callable[[int], dict] | None = None
    evaluate: Callable[[int], dict] | None = None
    eval_every: int = 0
    end: Callable[[], dict] | None = None


@dataclass
class StageData:
    """What a stage hands to later stages, named; checkpointed with the weights (algo_state["extra"]).

    Relabel tensors are indexed by window id over the store's frames, NaN at frames that are no window's o_t.
    """

    relabels: torch.Tensor | None = None
    """(frames, Z | A) the relabel stage's labels of every unlabelled window: latents (clam, vq) or
    pseudo-actions in [-1, 1] (vpt); the policy stage's targets."""
    decoded: torch.Tensor | None = None
    """(frames, A) d(relabels): the targets of clam's policy stage when policy.space=action."""
    play_latents: torch.Tensor | None = None
    """(frames, Z) vq: the frozen IDM + VQ codes of the labelled play windows, the decoder stage's inputs."""
    sidm_probe: torch.Tensor | None = None
    """(probe windows, A) clam with lam.select=disagreement: the supervised IDM's labels, the reference."""
    best: dict[str, dict] = field(default_factory=dict)
    """Model selection, per stage name: {"score", "step", "state": {module: state_dict}} of the best evaluation so far."""

    TENSORS = ("relabels", "decoded", "play_latents", "sidm_probe")

    def to_dict(self) -> dict:
        """Plain dict for torch.save (weights_only loads): the tensors that are set, and "best/<stage>" entries."""
        d = {k: getattr(self, k) for k in self.TENSORS if getattr(self, k) is not None}
        return d | {f"best/{k}": v for k, v in self.best.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "StageData":
        unknown = [k for k in d if k not in cls.TENSORS and not k.startswith("best/")]
        if unknown:
            raise ValueError(f"unknown stage data {unknown} in the checkpoint")
        return cls(**{k: d[k] for k in cls.TENSORS if k in d},
                   best={k[len("best/"):]: v for k, v in d.items() if k.startswith("best/")})


class Algorithm:
    """Base of every algorithm: registries of what a checkpoint must hold."""

    name = "?"

    def __init__(self):
        self.modules: dict[str, nn.Module] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self.last_lr: float | None = None  # the learning rate of the latest update (charts/lr)
        self.samplers: dict = {}
        self.stage_data = StageData()  # what stages hand on: relabels, selected weights
        self.stages: list[Stage] = []

    def state_dict(self) -> dict:
        return {"modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optims": {k: o.state_dict() for k, o in self.optims.items()}, "extra": self.stage_data.to_dict()}

    def load_state_dict(self, d: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(d["modules"][k])
        for k, o in self.optims.items():
            o.load_state_dict(d["optims"][k])
        self.stage_data = StageData.from_dict(d["extra"])


def _step_of(line: str) -> float:
    """The step of a metrics.jsonl record; inf for a torn or foreign line (a write cut off by a kill), so it is dropped."""
    try:
        rec = json.loads(line)
        return rec.get("step", 0) if isinstance(rec, dict) and isinstance(rec.get("step", 0), int) else float("inf")
    except ValueError:
        return float("inf")


def _rng_state() -> dict:
    """Every global RNG as plain Python values (they travel through all_gather_object and weights_only loads)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"python": random.getstate(), "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
          "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        st["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return st


def _set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    kind, keys, pos, has_gauss, gauss = st["numpy"]
    np.random.set_state((kind, np.array(keys, np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(torch.tensor(st["torch"], dtype=torch.uint8))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in st["cuda"]])


class Run:
    """One training run in RUN/: device, process group, seeding, files, logging, checkpoints."""

    def __init__(self, cfg, out: str | Path, resume: bool):
        self.cfg, self.out, self.resume = cfg, Path(out), resume
        # ---- distributed (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        want_cuda = cfg.run.device.startswith("cuda") or (cfg.run.device == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise UserError(f"run.device={cfg.run.device} but CUDA is not available; use --set run.device=cpu")
        if want_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            self.device = torch.device(cfg.run.device if ":" in cfg.run.device else f"cuda:{local}")
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if want_cuda else "gloo")
        self.is_main = self.rank == 0
        self.amp = cfg.run.amp and self.device.type == "cuda"
        self.compile = cfg.run.compile and self.device.type == "cuda"
        if (cfg.run.amp or cfg.run.compile) and self.device.type != "cuda":
            log.info("run.amp / run.compile apply on CUDA only; training in float32 eager on the CPU")

        # ---- TRY NOT TO MODIFY: seeding, in one block
        seed = cfg.run.seed
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        torch.backends.cudnn.deterministic = cfg.run.deterministic
        torch.backends.cudnn.benchmark = not cfg.run.deterministic
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)

        # ---- the RUN directory (checked on every rank, so all fail alike; written by rank 0)
        exists = self.out.is_dir() and any((self.out / n).exists() for n in ("config.yaml", CKPT_NAME, "policy.pt"))
        if exists and not resume:
            raise UserError(f"{self.out} already holds a run; add --resume to continue it, or choose a new --out")
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{self.out}: exists and is not a directory")
        self.tb = None
        self.metrics_file = None
        self.fingerprint: str | None = None  # of the datasets; stored in checkpoints, checked on resume
        self.t0 = time.perf_counter()

    # ---- files

    @property
    def ckpt_path(self) -> Path:
        return self.out / CKPT_NAME

    def load_checkpoint(self) -> dict | None:
        if not self.ckpt_path.is_file():
            return None
        try:
            ckpt = torch.load(self.ckpt_path, map_location=self.device, weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{self.ckpt_path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
        if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
            raise UserError(f"{self.ckpt_path}: not a clamkit checkpoint")
        verify(ckpt, self.ckpt_path, hint="restore it, or train again without --resume")
        if ckpt.get("world_size") != self.world:
            raise UserError(f"{self.ckpt_path}: was written by {ckpt['world_size']} process(es); resume with the same --nproc-per-node")
        return ckpt

    def start(self, cfg, global_step: int) -> None:
        """Rank 0: create RUN/, write config.yaml, open metrics.jsonl (truncated to `global_step` on resume) and TensorBoard."""
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for tmp in self.out.glob(f".{CKPT_NAME}.*.tmp"):  # a checkpoint write killed half-way; never the checkpoint
                tmp.unlink(missing_ok=True)
            save_config(cfg, self.out / "config.yaml")
            path = self.out / "metrics.jsonl"
            if path.exists():  # drop records logged after the checkpoint we resume from; they will be redone
                keep = [ln for ln in path.read_text(errors="replace").splitlines() if _step_of(ln) <= global_step]
                path.write_text("".join(ln + "\n" for ln in keep))
            self.metrics_file = open(path, "a")
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out), purge_step=global_step + 1 if global_step else None)
                self.tb.add_text("config", "```\n" + json.dumps(to_dict(cfg), indent=1) + "\n```", 0)
            except ImportError:
                log.warning("tensorboard is not installed; metrics go to metrics.jsonl only (pip install 'clamkit[train]')")
        self.barrier()

    def save_checkpoint(self, algo: Algorithm, stage: int, step: int, global_step: int) -> None:
        """Gather every rank's samplers and RNG states; rank 0 writes atomically (clamkit.fileio)."""
        per_rank = self.gather({"samplers": {k: s.state_dict() for k, s in algo.samplers.items()}, "rng": _rng_state()})
        if not self.is_main:
            return
        blob = {"format": CKPT_FORMAT, "version": 1, "algo": algo.name, "config": to_dict(self.cfg), "stage": stage,
                "step": step, "global_step": global_step, "world_size": self.world, "algo_state": algo.state_dict(),
                "per_rank": per_rank, "fingerprint": self.fingerprint, "elapsed": time.perf_counter() - self.t0}
        blob = seal(blob)  # verified on --resume: a flipped byte is an error, not a silently different state
        try:
            write_atomic(self.ckpt_path, lambda f: torch.save(blob, f))
        except OSError as e:  # a full disk, a quota: the previous checkpoint is untouched
            kept = f"the previous checkpoint ({self._ckpt_desc()}) is intact" if self.ckpt_path.is_file() else "no checkpoint was kept"
            raise UserError(f"{self.ckpt_path}: could not write the checkpoint at global step {global_step} "
                            f"({e.strerror or e}); {kept}: free space and re-run with --resume") from None

    def _ckpt_desc(self) -> str:
        try:
            c = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
            return f"stage {c['stage']} step {c['step']}"
        except Exception:  # noqa: BLE001 - only for the message
            return "unreadable"

    def restore(self, algo: Algorithm, ckpt: dict) -> None:
        algo.load_state_dict(ckpt["algo_state"])
        mine = ckpt["per_rank"][self.rank]
        for k, s in algo.samplers.items():
            s.load_state_dict(mine["samplers"][k])
        _set_rng_state(mine["rng"])

    # ---- logging

    def log(self, step: int, metrics: dict, stage: str | None = None) -> None:
        if not self.is_main or not metrics:
            return
        rec = {"step": int(step)}
        if stage is not None:
            rec["stage"] = stage
        rec["time"] = round(time.perf_counter() - self.t0, 3)
        for k, v in metrics.items():
            v = v.item() if isinstance(v, torch.Tensor) else v
            rec[k] = float(v) if isinstance(v, (float, np.floating)) else v
            if self.tb is not None and isinstance(rec[k], (int, float)) and not isinstance(rec[k], bool):
                self.tb.add_scalar(k, rec[k], step)
        self.metrics_file.write(json.dumps(rec) + "\n")
        self.metrics_file.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.metrics_file is not None:
            self.metrics_file.close()
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    # ---- distributed helpers

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def wrap(self, module: nn.Module) -> nn.Module:
        """The training view of a loss module: DDP under torchrun, torch.compile when asked (CUDA)."""
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            module = DDP(module, device_ids=[self.device] if self.device.type == "cuda" else None)
        if self.compile:
            module = torch.compile(module)
        return module

    def autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def run_stages(run: Run, algo: Algorithm, ckpt: dict | None) -> dict:
    """Run (or continue) every stage; checkpoint every run.ckpt_every steps and at each stage end.
    Returns per-stage timing and the last metrics of each namespace for the summary."""
    cfg = run.cfg
    stages = algo.stages
    start_stage = ckpt["stage"] if ckpt else 0
    start_step = ckpt["step"] if ckpt else 0
    global_step = ckpt["global_step"] if ckpt else 0
    total = sum(s.steps for s in stages)
    bar = tqdm(total=total, initial=global_step, disable=not (cfg.run.progress and run.is_main), dynamic_ncols=True,
               desc=algo.name, unit="step")
    summary: dict = {"stages": {}, "last": {}}
    logged_first = ckpt is not None
    for si, st in enumerate(stages):
        if si < start_stage:
            continue
        first = start_step if si == start_stage else 0
        t_stage, t_log, n_log = time.perf_counter(), time.perf_counter(), 0
        bar.set_description(f"{algo.name}:{st.name}")
        for i in range(first, st.steps):
            m = st.step(i)
            global_step += 1
            n_log += 1
            bar.update(1)
            if not logged_first:  # which windows each rank drew first (DDP: ranks must differ)
                hashes = run.gather({k: s.first_hash for k, s in algo.samplers.items() if getattr(s, "first_hash", None)})
                run.log(global_step, {"ddp/first_batch_hash": hashes, "ddp/world_size": run.world}, st.name)
                logged_first = True
            last = i + 1 == st.steps
            if (i + 1) % cfg.run.log_every == 0 or last:
                now = time.perf_counter()
                sps = n_log / max(now - t_log, 1e-9)
                t_log, n_log = now, 0
                m = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in m.items()}
                lr = {"charts/lr": algo.last_lr} if algo.last_lr is not None else {}
                run.log(global_step, {**m, **lr, "charts/steps_per_s": sps, "charts/stage": si}, st.name)
                loss = next((v for k, v in m.items() if k.startswith("losses/")), None)
                bar.set_postfix({"loss": f"{loss:.4g}" if loss is not None else "-", "steps/s": f"{sps:.1f}"})
            if st.evaluate is not None and ((i + 1) % max(st.eval_every, 1) == 0 or last):
                ev = st.evaluate(i + 1)
                run.log(global_step, ev, st.name)
                summary["last"].update(ev)
            if (i + 1) % cfg.run.ckpt_every == 0 and not last:
                run.save_checkpoint(algo, si, i + 1, global_step)
        end = st.end() if st.end is not None else {}
        if end:
            run.log(global_step, end, st.name)
            summary["last"].update(end)
        dt = time.perf_counter() - t_stage
        summary["stages"][st.name] = stage_summary(st.steps - first, dt)
        run.save_checkpoint(algo, si + 1, 0, global_step)
    bar.close()
    # Every rank must end with the same weights (DDP); the hashes go to metrics.jsonl for checking.
    digest = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for t in algo.deploy.state_dict().values())).hexdigest()[:16]
    run.log(global_step, {"ddp/final_param_hash": run.gather(digest)})
    summary["global_step"] = global_step
    return summary
