"""The composition layer: the one place where the stages meet (train -> export -> evaluate).

trainer/ never imports export/ or runtime/, and export/ never imports trainer/ (tests/core/test_arrows.py
reads every import statically). What one stage needs of another is handed to it from here:
- `clam-export RUN` reads the trained policy with the trainer's reader (clamkit.trainer.deploy:
  load_policy, sample_observations), passed to export_run as its `loader`;
- `clam-train --set eval.episodes=N` exports RUN/bundle and evaluates it with clamkit.runtime.evaluate
  (the robot's loop, not a second one), passed to train() as its `evaluate` step.

The clam-train and clam-export console scripts start here (train_main, export_main): the stage's own
click command (trainer/cli.py, export/cli.py) with these hooks as click's `obj`. Nothing is imported
from the stages' heavy parts until a command needs it, so `clam-export BUNDLE --trt` stays torch-free.
Only console scripts and tests import this module.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import click

from clamkit.errors import require
from clamkit.export import cli as export_cli
from clamkit.trainer import cli as trainer_cli

log = logging.getLogger(__name__)


def policy_loader():
    """The trainer's policy reader (load_policy(path), sample_observations(path, n)): export_run's `loader`."""
    return require("clamkit.trainer.deploy", extra="train")


def export_run(run, out, opts=None):
    """clamkit.export.exporter.export_run on a training run, reading its policy with the trainer's reader."""
    from clamkit.export.exporter import export_run as _export_run

    return _export_run(run, out, opts, loader=policy_loader())


def evaluate_in_sim(cfg, out: Path, unlabelled: str) -> dict:
    """Export RUN/bundle and evaluate it with clamkit.runtime.evaluate on the unlabelled dataset's robot and
    task (or cfg.eval.env). train() calls it after writing policy.pt when cfg.eval.episodes > 0."""
    from clamkit.dataset import Dataset
    from clamkit.runtime.evaluate import evaluate

    ds = Dataset(unlabelled)
    robot, task = ds.meta["robot"], ds.meta["task"]
    env = cfg.eval.env or (robot if ":" in robot or not task else f"{robot}:{task}")
    steps = cfg.eval.max_steps or max(ds.episodes[0]["length"] - 1, 1)
    export_run(out, out / "bundle")
    r = evaluate(out / "bundle", env, episodes=cfg.eval.episodes, seed=cfg.eval.seed, max_steps=steps)
    log.info("eval on %s over %d episodes: %s", env, cfg.eval.episodes,
             ", ".join(f"{k} {r[k]:.3f}" for k in ("success_rate", "mean_return") if k in r))
    return {k: r[k] for k in ("success_rate", "mean_return", "latency_ms") if k in r} | {"env": env, "episodes": cfg.eval.episodes}


def _composed(command: click.Command, hooks: dict) -> click.Command:
    """A copy of a stage's click command that runs with `hooks` as click's obj (the stage's own stays plain)."""
    composed = copy.copy(command)
    composed.context_settings = {**command.context_settings, "obj": hooks}
    return composed


# Looked up when called, so a test can replace policy_loader or evaluate_in_sim on this module.
train_main = _composed(trainer_cli.main, {"evaluate": lambda *a: evaluate_in_sim(*a)})
export_main = _composed(export_cli.main, {"policy_loader": lambda: policy_loader()})
