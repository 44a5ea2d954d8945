"""SIGKILL in the middle of training, then --resume: same final parameters as an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

# lam.select=disagreement: four stages (idm, lam, relabel, policy), so a kill and resume cross every kind
ARGS = ["--set", "run.progress=false", "--set", "lam.steps=1500", "--set", "idm.steps=300", "--set", "policy.steps=300",
        "--set", "run.ckpt_every=100", "--set", "lam.eval_every=100", "--set", "lam.select=disagreement"]


def _cmd(expert, play, out, smoke):
    return [sys.executable, "-m", "clamkit.trainer", "--config", smoke, "--unlabelled", expert, "--labelled", play,
            "--out", str(out), *ARGS]


def _params(run):
    return torch.load(run / "policy.pt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(linear_data, tmp_path, helpers):
    expert, play = linear_data
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cmd(expert, play, full, helpers.SMOKE), check=True, capture_output=True)

    proc = subprocess.Popen(_cmd(expert, play, killed, helpers.SMOKE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, deadline = killed / "checkpoint.pt", time.time() + 120
    try:
        while time.time() < deadline:  # wait for a checkpoint inside stage 1 (lam), then kill -9
            if ckpt.exists():
                c = torch.load(ckpt, weights_only=True)
                if c["stage"] == 1 and c["step"] >= 200:
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    c = torch.load(ckpt, weights_only=True)
    assert c["stage"] == 1 and 0 < c["step"] < 1500, "the kill should land inside the LAM stage"
    assert not (killed / "policy.pt").exists()

    # the same command without --resume refuses and says how to continue
    again = subprocess.run(_cmd(expert, play, killed, helpers.SMOKE), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr

    subprocess.run(_cmd(expert, play, killed, helpers.SMOKE) + ["--resume"], check=True, capture_output=True)
    a, b = _params(full), _params(killed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)

    # metrics.jsonl of the resumed run has each step once, like the uninterrupted one
    def steps(run):
        return [(r["step"], tuple(sorted(r))) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                if "ddp/first_batch_hash" not in r]
    assert steps(full) == steps(killed)
