"""train(): datasets + config -> RUN/ with policy.pt, config.yaml, metrics.jsonl, TensorBoard events,
checkpoint.pt and summary.json. The CLI (cli.py) is a thin shell around it.

    from clamkit.config import load_config
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.train import train
    cfg, _ = load_config(TrainConfig, "configs/smoke.yaml", ["algo=clam"])
    summary = train(cfg, ["data/reach-expert"], ["data/reach-play"], "runs/reach")
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import clamkit
from clamkit.config import to_dict
from clamkit.fileio import write_json_atomic
from clamkit.errors import UserError
from clamkit.specs import ObservationSpec
from clamkit.trainer.bc import BCExpert, BCPlay
from clamkit.trainer.clam import CLAM
from clamkit.trainer.data import TrainData, load_data
from clamkit.trainer.deploy import POLICY_NAME, save_policy
from clamkit.trainer.engine import Run, run_stages
from clamkit.trainer.vpt import VPT
from clamkit.trainer.vq import VQ

log = logging.getLogger(__name__)
ALGORITHMS = {a.name: a for a in (CLAM, BCPlay, BCExpert, VQ, VPT)}  # keyed by the names in trainer/config.py ALGOS
SAMPLES = 64  # recorded observations stored in policy.pt for the exporter's parity check
RESUME_MAY_CHANGE = {"run.progress", "run.threads", "run.log_every", "eval.episodes", "eval.env", "eval.seed",
                     "eval.max_steps"}


def code_version() -> str:
    """clamkit.__version__, plus the git commit when running from a checkout."""
    root = Path(clamkit.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{clamkit.__version__}+g{sha}" if sha else clamkit.__version__


def resolve(cfg, data: TrainData) -> None:
    """Fill derived fields right after the data is known (they are saved in config.yaml)."""
    cfg.data.obs = data.key
    if cfg.lam.weight is None:
        cfg.lam.weight = 1.0 if data.key == "state" else 0.01  # reference λ (DESIGN §3)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_resume(cfg, data: TrainData, ckpt: dict, out: Path) -> None:
    old, new = _flat(ckpt["config"]), _flat(to_dict(cfg))
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and k not in RESUME_MAY_CHANGE]
    if diff:
        raise UserError(f"{out} was trained with a different config ({'; '.join(diff)}); resume with the same --config and --set")
    if ckpt.get("fingerprint") != data.fingerprint:
        raise UserError(f"{out} was trained on different datasets (their meta.json changed); resume with the same --unlabelled/--labelled")


def train(cfg, unlabelled: list[str], labelled: list[str], out: str | Path, resume: bool = False,
          echo: list[str] | tuple[str, ...] = (), pool: list[str] = (),
          evaluate: Callable[[object, Path, str], dict] | None = None) -> dict:
    """Train `cfg.algo` and write RUN/policy.pt. Returns the summary (also RUN/summary.json).

    `evaluate(cfg, out, unlabelled[0]) -> {success_rate | mean_return, ...}` runs after policy.pt is written
    when cfg.eval.episodes > 0: the composition layer (clamkit.pipeline.evaluate_in_sim) exports RUN/bundle
    and runs it through the robot's loop; the trainer itself never imports export/ or runtime/.
    """
    out = Path(out)
    if cfg.eval.episodes and evaluate is None:
        raise UserError("eval.episodes > 0 needs the export and runtime stages: run clam-train "
                        "(clamkit.pipeline), or evaluate RUN/bundle afterwards with clam-export and clam-eval")
    t0 = time.perf_counter()
    run = Run(cfg, out, resume)
    try:
        data = load_data(cfg, list(unlabelled), list(labelled), run.device, pool=list(pool))
        resolve(cfg, data)
        ckpt = run.load_checkpoint() if resume else None
        if resume and ckpt is None and run.is_main:
            log.info("%s: no checkpoint yet; starting from the beginning", out)
        if ckpt is not None:
            _check_resume(cfg, data, ckpt, out)
        run.fingerprint = data.fingerprint
        algo = ALGORITHMS[cfg.algo](cfg, data, run)
        if ckpt is not None:
            run.restore(algo, ckpt)
        run.start(cfg, ckpt["global_step"] if ckpt else 0)
        if run.is_main:
            for line in echo:
                log.info(line)
            log.info("%s on %s (%s, world %d): %d unlabelled episodes (%s hidden actions), %d labelled, %d pool; %s",
                     cfg.algo, data.key, run.device, run.world, len(data.unl), "with" if data.hidden_actions else "no",
                     len(data.lab), len(data.lam) - len(data.unl), f"resuming at stage {ckpt['stage']} step {ckpt['step']}" if ckpt else "fresh run")
        result = run_stages(run, algo, ckpt)

        summary = {"algo": cfg.algo, "obs": data.key, "device": str(run.device), "world_size": run.world,
                   "seconds": round(time.perf_counter() - t0, 2), "global_step": result["global_step"],
                   "stages": result["stages"], "metrics": result["last"], "policy": str(out / POLICY_NAME)}
        if run.is_main:  # the last value of every scalar, including those logged before a resume
            run.metrics_file.flush()
            for line in (out / "metrics.jsonl").read_text().splitlines():
                rec = json.loads(line)
                summary["metrics"].update({k: v for k, v in rec.items() if "/" in k and isinstance(v, (int, float))})
        if run.is_main:
            meta = {"observation": ObservationSpec({data.key: data.obs_spec}).to_json(), "action": data.action.to_json(),
                    "fps": data.fps, "la_dim": algo.la_dim, "algo": cfg.algo,
                    "provenance": {"config": to_dict(cfg), "dataset_fingerprint": data.fingerprint,
                                   "code_version": code_version()}}
            ids = np.sort(np.random.default_rng(cfg.run.seed).choice(data.unl.total, min(SAMPLES, data.unl.total), replace=False))
            samples = {data.key: data.unl.get(ids, (0,))[:, 0].cpu().numpy()}
            deploy = algo.deploy
            save_policy(out / POLICY_NAME, _cpu_copy(deploy), meta, samples)
            if cfg.eval.episodes:
                summary["eval"] = evaluate(cfg, out, unlabelled[0])
                score = {k: summary["eval"][k] for k in ("success_rate", "mean_return") if k in summary["eval"]}
                run.log(result["global_step"], {f"eval/{k}": v for k, v in score.items()}, "eval")
                summary["metrics"].update({f"eval/{k}": v for k, v in score.items()})
            write_json_atomic(out / "summary.json", summary)
        return summary
    finally:
        run.close()


def _cpu_copy(deploy):
    """The DeployPolicy on the CPU in eval mode (its state_dict is what policy.pt stores)."""
    import copy

    return copy.deepcopy(deploy).to(torch.device("cpu")).eval()
