"""clam-train: train CLAM (or a baseline) from unlabelled recordings plus a little labelled play data."""

from __future__ import annotations

import json
import os

import click

from clamkit.cli import CONTEXT_SETTINGS, handle_errors

EXAMPLE = """
\b
Example:
  clam-record metaworld --task reach-v3 --policy expert --episodes 100 --out data/reach-expert --no-actions
  clam-record metaworld --task reach-v3 --policy play --episodes 45 --out data/reach-play
  clam-train --config configs/metaworld-state.yaml \\
      --unlabelled data/reach-expert --labelled data/reach-play --out runs/reach-clam
  clam-train ... --out runs/reach-vpt --set algo=vpt            # a baseline, same data
  clam-record metaworld --task reach-v3 --policy noisy-expert --episodes 1000 --no-actions --out data/reach-pool
  clam-train ... --pool data/reach-pool                          # the LAM also learns from noisy video
  clam-train ... --out runs/reach-clam --resume                 # continue after a crash
  torchrun --nproc-per-node 2 --no-python clam-train ...        # DDP (gloo on CPU, nccl on GPU)

\b
Writes RUN/policy.pt (load with clamkit.trainer.deploy.load_policy, export with clam-export),
RUN/config.yaml (resolved), RUN/metrics.jsonl, TensorBoard events, RUN/checkpoint.pt, RUN/summary.json.
"""


@click.command(context_settings=CONTEXT_SETTINGS, help="Train a CLAM policy (or a baseline: --set algo=bc-play|bc-expert|vq|vpt).\n" + EXAMPLE)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config (configs/*.yaml); defaults are the state recipe.")
@click.option("--unlabelled", multiple=True, required=True, type=click.Path(),
              help="Dataset of expert episodes; their actions, if recorded, are never trained on (repeatable).")
@click.option("--labelled", multiple=True, required=True, type=click.Path(),
              help="Dataset with labelled (play) episodes (repeatable).")
@click.option("--pool", multiple=True, type=click.Path(),
              help="Observation-only video of the same scene at any skill level: trains the latent action model "
                   "only, never imitated (clam, vq; repeatable). The CLAM paper's replay-buffer pool.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory to write.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set lam.steps=500 --set algo=vpt (repeatable; type-checked).")
@click.option("--resume", is_flag=True, help="Continue RUN from its last checkpoint.")
@click.option("--seed", type=int, default=None, help="Shorthand for --set run.seed=N.")
@handle_errors
def main(config_path, unlabelled, labelled, pool, out, overrides, resume, seed):
    from clamkit.config import load_config
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.train import train

    overrides = list(overrides) + ([f"run.seed={seed}"] if seed is not None else [])
    cfg, echo = load_config(TrainConfig, config_path, overrides)
    hooks = click.get_current_context().obj or {}  # clamkit.pipeline.train_main hands in the evaluate step
    summary = train(cfg, list(unlabelled), list(labelled), out, resume=resume, echo=echo, pool=list(pool),
                    evaluate=hooks.get("evaluate"))
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only rank 0 reports
    for name, st in summary["stages"].items():
        sps = f", {st['steps_per_s']} steps/s" if st["steps_per_s"] else ""
        click.echo(f"stage {name:<12} {st['steps']:6d} steps {st['seconds']:7.1f} s{sps}, peak memory {st['peak_rss_mib']:.0f} MiB")
    keys = sorted(k for k in summary["metrics"] if k.startswith(("probe/", "select/", "val/")))
    click.echo(json.dumps({k: round(summary["metrics"][k], 5) for k in keys}, indent=1))
    click.echo(f"done in {summary['seconds']:.1f} s: {summary['policy']}")


if __name__ == "__main__":
    main()
