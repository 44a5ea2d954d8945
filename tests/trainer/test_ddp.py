"""torchrun --nproc-per-node 2 on the CPU (gloo): ranks draw different data, end in sync, rank 0 writes."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_torchrun_two_ranks_gloo(linear_data, tmp_path, helpers):
    expert, play = linear_data
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "clamkit.trainer",
           "--config", helpers.SMOKE, "--unlabelled", expert, "--labelled", play, "--out", str(out),
           "--set", "run.progress=false", "--set", "lam.steps=30", "--set", "idm.steps=30",
           "--set", "policy.steps=30", "--set", "run.ckpt_every=10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if "ddp/first_batch_hash" in r)
    assert first["ddp/world_size"] == 2
    h0, h1 = first["ddp/first_batch_hash"]
    assert h0 and h0 != h1  # each rank sampled different windows
    final = next(r for r in records if "ddp/final_param_hash" in r)["ddp/final_param_hash"]
    assert len(final) == 2 and final[0] == final[1]  # DDP kept the ranks' weights identical
    # rank 0 alone wrote: one checkpoint, one metrics file, one event file, no temp files left over
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("events")) == \
        ["checkpoint.pt", "config.yaml", "metrics.jsonl", "policy.pt", "summary.json"]
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    assert stdout.count("done in") == 1
