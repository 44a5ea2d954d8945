"""Interrupted jobs never lose data.

- Training killed with SIGKILL at many points (random times during steps and checkpoint writes, and
  deliberately in the middle of a checkpoint write and of the relabelling) always resumes from an intact
  checkpoint, and the resumed run ends with exactly the parameters of an uninterrupted one.
- A full disk during a checkpoint write keeps the previous checkpoint and is a one-line error; the run
  then resumes (also over a torn metrics.jsonl line and a half-written checkpoint temp file).
- A recording killed mid-episode leaves a valid dataset with the completed episodes, and re-running the
  command completes it to what an uninterrupted recording holds.

The many-kills test forks the trainer from a server process that has imported torch once
(multiprocessing's forkserver), so each of its ~15 lives costs its training time, not a fresh import.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

SMOKE = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")
ENV = os.environ | {"MUJOCO_GL": "egl", "PYTHONWARNINGS": "ignore"}


def _params(run: Path) -> dict:
    return torch.load(run / "policy.pt", weights_only=True)["state_dict"]


def _assert_same_params(a: Path, b: Path) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=0, msg=f"{k} differs between {a.name} and {b.name}")


def _metric_steps(run: Path) -> list:
    return [(r["step"], tuple(sorted(r))) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "ddp/first_batch_hash" not in r]


def _tmp_files(run: Path) -> list[Path]:
    return sorted(run.glob(".checkpoint.pt.*.tmp"))


# ----------------------------------------------------------------------------- full disk


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(linear, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from clamkit.trainer.cli import main

    expert, play = linear
    args = ["--config", SMOKE, "--unlabelled", expert, "--labelled", play, "--set", "run.progress=false",
            "--set", "lam.steps=100", "--set", "idm.steps=50", "--set", "policy.steps=100", "--set", "run.ckpt_every=25",
            "--set", "lam.select=disagreement"]  # four stages, idm first
    base = CliRunner().invoke(main, args + ["--out", str(tmp_path / "full")])
    assert base.exit_code == 0, base.output

    out = tmp_path / "disk"
    real_save, seen = torch.save, {"n": 0}

    def full_disk(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("format") == "clamkit-checkpoint":
            seen["n"] += 1
            if seen["n"] == 5:  # stage lam, some checkpoints already written
                seen["before"] = (out / "checkpoint.pt").read_bytes()
                f.write(b"\0" * 4096)  # half a checkpoint reached the disk, then it was full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk)
    r = CliRunner().invoke(main, args + ["--out", str(out)])
    monkeypatch.undo()
    assert r.exit_code == 2, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.output, r.output
    assert str(out / "checkpoint.pt") in errors[0] and "No space left on device" in errors[0] and "--resume" in errors[0]
    assert "intact" in errors[0]
    assert (out / "checkpoint.pt").read_bytes() == seen["before"]  # the previous checkpoint, byte for byte
    assert torch.load(out / "checkpoint.pt", weights_only=True)["format"] == "clamkit-checkpoint"
    assert not _tmp_files(out) and not (out / "policy.pt").exists()

    # What a kill can leave besides: a torn last line in metrics.jsonl, a half-written temp checkpoint.
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 9999, "losses/lam_to')
    (out / ".checkpoint.pt.x1y2.tmp").write_bytes(b"\0" * 100)
    r = CliRunner().invoke(main, args + ["--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    assert not _tmp_files(out)
    _assert_same_params(tmp_path / "full", out)
    assert _metric_steps(tmp_path / "full") == _metric_steps(out)


# ----------------------------------------------------------------------------- SIGKILL, many times

# Runs inside a child forked from the forkserver: log to a file, install the pause hooks, run clam-train.
CHILD = r'''
import io, os, sys, time
fd = os.open({log!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(fd, 1); os.dup2(fd, 2)
import threading
import torch
import tqdm
tqdm.tqdm.set_lock(threading.RLock())  # not tqdm's multiprocessing lock: a SIGKILLed life would leak its semaphore
import clamkit.trainer.train as train_mod
from clamkit.trainer import common

def mark(name):
    open(os.path.join({marks!r}, name), "w").close()

real_stages = train_mod.run_stages
def run_stages(*a, **k):
    mark("started")
    return real_stages(*a, **k)
train_mod.run_stages = run_stages

if {pause_ckpt!r}:  # stop half-way through the N-th checkpoint write of this life (the kill lands there)
    real_save, n = torch.save, [0]
    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("format") == "clamkit-checkpoint":
            n[0] += 1
            if n[0] == {pause_ckpt!r}:
                buf = io.BytesIO()
                real_save(obj, buf, *a, **k)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush(); os.fsync(f.fileno())
                mark("paused"); time.sleep(120)
        return real_save(obj, f, *a, **k)
    torch.save = save

if {pause_relabel!r}:  # stop inside the relabel stage, after the IDM labelled every window
    real_relabel = common.Common.relabel_all
    def relabel_all(self, *a, **k):
        out = real_relabel(self, *a, **k)
        mark("paused"); time.sleep(120)
        return out
    common.Common.relabel_all = relabel_all

sys.argv = ["clam-train"] + {argv!r}
from clamkit.trainer.cli import main
main()
'''


class Trainer:
    """Starts clam-train lives as children of a forkserver that imported torch and clamkit once."""

    def __init__(self, tmp: Path, args: list[str]):
        self.tmp, self.args, self.lives = tmp, args, 0
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["torch", "torch.utils.tensorboard", "clamkit.trainer.cli", "clamkit.trainer.train"])

    def start(self, out: Path, resume: bool, pause_ckpt: int = 0, pause_relabel: bool = False):
        self.lives += 1
        marks = self.tmp / f"marks-{self.lives}"
        marks.mkdir()
        code = CHILD.format(log=str(self.tmp / f"life-{self.lives}.log"), marks=str(marks), pause_ckpt=pause_ckpt,
                            pause_relabel=pause_relabel, argv=self.args + ["--out", str(out)] + (["--resume"] if resume else []))
        p = self.ctx.Process(target=exec, args=(code, {}), daemon=True)
        p.start()
        return p, marks

    @staticmethod
    def wait_for(marks: Path, name: str, p, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while not (marks / name).exists():
            assert p.is_alive() or (marks / name).exists(), f"the trainer exited ({p.exitcode}) before '{name}'"
            assert time.monotonic() < deadline, f"no '{name}' within {timeout} s"
            time.sleep(0.002)
        return time.monotonic()

    def log(self) -> str:
        return (self.tmp / f"life-{self.lives}.log").read_text(errors="replace")[-3000:]


def _checkpoint(run: Path):
    c = torch.load(run / "checkpoint.pt", weights_only=True)  # must load: the kill never leaves a torn checkpoint
    assert c["format"] == "clamkit-checkpoint"
    return c["stage"], c["step"], c["global_step"]


@pytest.mark.slow
def test_sigkill_at_many_points_then_resume_matches_uninterrupted(linear, tmp_path):
    expert, play = linear
    args = ["--config", SMOKE, "--unlabelled", expert, "--labelled", play, "--set", "run.progress=false",
            "--set", "run.ckpt_every=20", "--set", "idm.steps=200", "--set", "lam.steps=300", "--set", "policy.steps=300",
            "--set", "lam.select=disagreement"]  # four stages, idm first
    total_steps = 200 + 300 + 300  # stages idm, lam, (relabel,) policy
    tr = Trainer(tmp_path, args)
    rng = random.Random(20261127)
    kills: list[str] = []
    t_all = time.monotonic()
    try:
        # Baseline, uninterrupted: how long the training loop takes (from the start of the stages to exit).
        p, marks = tr.start(tmp_path / "full", resume=False)
        t0 = tr.wait_for(marks, "started", p)
        p.join(120)
        train_s = time.monotonic() - t0
        assert p.exitcode == 0, tr.log()

        def kill(p, run: Path, what: str, before, may_finish: bool = False) -> tuple | None:
            """SIGKILL the training; None when (may_finish) it had exited by itself just before the signal."""
            os.kill(p.pid, signal.SIGKILL)
            p.join(30)
            if may_finish and p.exitcode == 0:
                return None
            assert p.exitcode == -signal.SIGKILL
            after = _checkpoint(run) if (run / "checkpoint.pt").exists() else None
            if before is not None:
                assert after is not None and after >= before, f"{what}: progress went back from {before} to {after}"
            kills.append(f"{run.name}: {what} -> resumes at stage/step/global {after}")
            return after

        def finish(run: Path) -> None:
            p, _ = tr.start(run, resume=True)
            p.join(180)
            assert p.exitcode == 0, tr.log()
            assert not _tmp_files(run)
            _assert_same_params(tmp_path / "full", run)
            assert _metric_steps(tmp_path / "full") == _metric_steps(run)

        # Lane A: kills at random times, each life killed within what is left of the run.
        lane, done, ck = 0, 0, None
        run = tmp_path / "random-0"
        while done < 6:
            p, marks = tr.start(run, resume=ck is not None)
            t0 = tr.wait_for(marks, "started", p)
            left = train_s * (1 - (ck[2] if ck else 0) / total_steps)
            delay = rng.uniform(0.05, 0.8) * max(left, 0.2)
            while time.monotonic() < t0 + delay and p.is_alive():
                time.sleep(0.001)
            after = kill(p, run, f"SIGKILL {delay:.2f} s into the stages", ck, may_finish=True) if p.is_alive() else None
            p.join()
            if p.exitcode != -signal.SIGKILL:  # finished first (before, or as, the signal was sent): check it, new lane
                assert p.exitcode == 0, tr.log()
                _assert_same_params(tmp_path / "full", run)
                lane, ck = lane + 1, None
                run = tmp_path / f"random-{lane}"
                continue
            ck = after
            done += 1
        finish(run)

        # Lane B: kills at the places a random time rarely hits.
        run = tmp_path / "targeted"
        p, marks = tr.start(run, resume=False, pause_ckpt=3)
        tr.wait_for(marks, "paused", p)
        ck = kill(p, run, "SIGKILL half-way through the 3rd checkpoint write", None)
        assert _tmp_files(run), "the kill should have left the half-written temp file"
        assert ck[2] == 40, "the checkpoint is the one before the interrupted write"
        p, marks = tr.start(run, resume=True, pause_relabel=True)
        tr.wait_for(marks, "paused", p)
        ck = kill(p, run, "SIGKILL during the relabelling", ck)
        assert ck[0] == 2 and ck[2] == 500, "relabel (stage 2) must be redone from the end of the LAM stage"
        p, marks = tr.start(run, resume=True, pause_ckpt=2)
        tr.wait_for(marks, "paused", p)
        ck = kill(p, run, "SIGKILL half-way through a checkpoint write in the policy stage", ck)
        p, marks = tr.start(run, resume=True)
        t0 = tr.wait_for(marks, "started", p)
        time.sleep(rng.uniform(0.05, 0.5) * train_s * (1 - ck[2] / total_steps))
        if p.is_alive():
            ck = kill(p, run, "SIGKILL at a random time in the policy stage", ck)
        else:
            p.join()
        finish(run)
    finally:
        for child in multiprocessing.active_children():
            child.kill()
        stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
        if stop is not None:
            stop()
    print(f"\n{len(kills)} kills, {tr.lives} lives, baseline training {train_s:.1f} s, all in {time.monotonic() - t_all:.1f} s:\n  "
          + "\n  ".join(kills))
    assert len(kills) >= 10


# ----------------------------------------------------------------------------- recording


def _record_cmd(out: Path) -> list[str]:
    return [sys.executable, "-c", "from clamkit.record.cli import main; main()", "widowx-sim", "--task", "reach-block",
            "--episodes", "10", "--max-steps", "25", "--seed", "3", "--quiet", "--out", str(out)]


def test_recording_killed_mid_episode_keeps_completed_episodes(tmp_path):
    pytest.importorskip("mujoco")
    from clamkit.dataset import Dataset

    full = tmp_path / "full"
    subprocess.run(_record_cmd(full), check=True, capture_output=True, env=ENV, timeout=180)
    rng = random.Random(7)
    out = tmp_path / "killed"
    for target in (2, 6):  # two kills, each a random moment after `target` episodes are on disk
        p = subprocess.Popen(_record_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        deadline = time.monotonic() + 120
        while True:
            try:
                n = len(json.loads((out / "meta.json").read_text())["episodes"])
            except (OSError, ValueError, KeyError):
                n = 0
            if n >= target or p.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.08))  # an episode of 25 steps takes ~0.1 s: the kill lands inside one
        p.send_signal(signal.SIGKILL)
        p.wait()
        ds = Dataset(out)  # valid, and holds only whole episodes
        assert target <= len(ds) < 10
        for i in range(len(ds)):
            ds.verify_episode(i)
            assert ds.episode(i)["state"].shape[0] == ds.episodes[i]["length"]
    subprocess.run(_record_cmd(out), check=True, capture_output=True, env=ENV, timeout=180)  # the same command continues
    a, b = Dataset(full), Dataset(out)
    assert len(a) == len(b) == 10 and not list((out / "episodes").glob(".tmp-*"))
    for i in range(10):
        assert a.episodes[i]["seed"] == b.episodes[i]["seed"] == 3 + i
        for k in a.episode(i):
            np.testing.assert_array_equal(a.episode(i)[k], b.episode(i)[k])
