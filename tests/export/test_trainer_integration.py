"""clam-export on the trainer's real DeployPolicy (clamkit.trainer.deploy), no stand-ins."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from synthetic import write_linear  # tests/synthetic.py

from clamkit.bundle import read_meta
from clamkit.pipeline import export_main as main
from clamkit.trainer import deploy

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke.yaml"



@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A real state smoke run: `clam-train --config configs/smoke.yaml` on a tiny linear dataset (~5 s)."""
    d = tmp_path_factory.mktemp("smoke")
    unl, lab = write_linear(d / "expert", "expert", 12, T=40), write_linear(d / "play", "play", 8, T=40)
    cmd = [sys.executable, "-m", "clamkit.trainer", "--config", str(SMOKE), "--unlabelled", unl, "--labelled", lab,
           "--out", str(d / "run")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return d / "run"


def test_smoke_run_exports_cold(smoke_run, tmp_path):
    """A cold `clam-export` process exports the state smoke run with the default exporter (dynamo), parity
    included, real loader. (Its time is a benchmark figure, export_s in benchmarks/latency.py, not a test.)"""
    out = tmp_path / "bundle"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", "from clamkit.pipeline import export_main; export_main()", str(smoke_run), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    print(f"\ncold clam-export of the state smoke run: {wall:.2f} s wall\n{p.stdout}")
    meta = read_meta(out)
    assert meta.parity["exporter"] == "dynamo" and meta.parity["batch_sizes"] == [1, 16]
    assert meta.parity["max_abs_error"] <= 1e-4 and meta.parity["cosine"] >= 0.9999
    assert meta.inputs == ["state"] and meta.action.semantics == "linear:test" and meta.fps == 10
    assert {"config", "dataset_fingerprint", "code_version"} <= set(meta.provenance)


def test_smoke_run_legacy_exporter(smoke_run, tmp_path):
    res = CliRunner().invoke(main, [str(smoke_run / "policy.pt"), "--out", str(tmp_path / "b"), "--exporter", "legacy"])
    assert res.exit_code == 0, res.output + res.stderr
    p = read_meta(tmp_path / "b").parity
    assert p["exporter"] == "legacy" and p["max_abs_error"] <= 1e-4 and p["cosine"] >= 0.9999


def _image_run(root: Path) -> Path:
    """A real image DeployPolicy (random weights) saved with the trainer's own save_policy."""
    import torch

    torch.manual_seed(0)
    arch = {"key": "image", "in_shape": [40, 40, 3], "image_size": 32, "net": {"hidden": [32], "channels": [8, 16]},
            "policy_out": 8, "squash": False, "action_dim": 4, "decoder": {"la_dim": 8, "hidden": [32]}}
    policy = deploy.DeployPolicy(arch)
    meta = {"observation": {"image": {"shape": [40, 40, 3], "dtype": "uint8"}},
            "action": {"dim": 4, "low": [-1, -1, -1, 0], "high": [1, 1, 1, 1], "semantics": "metaworld_xyz+gripper"},
            "fps": 5.0, "la_dim": 8, "algo": "clam", "provenance": {"config": {}, "dataset_fingerprint": "f", "code_version": "c"}}
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    deploy.save_policy(root / "policy.pt", policy, meta, {"image": rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)})
    return root


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_trainer_image_policy_takes_uint8_straight_into_cast(exporter, tmp_path):
    """The trainer's preprocessing reshapes/permutes the uint8 frame before .float(); TensorRT takes a uint8
    input only into a Cast, so the exporter moves the Cast first (exact) and parity confirms it."""
    run = _image_run(tmp_path / "run")
    res = CliRunner().invoke(main, [str(run), "--out", str(tmp_path / "b"), "--exporter", exporter])
    assert res.exit_code == 0, res.output + res.stderr
    meta = read_meta(tmp_path / "b")
    assert meta.parity["passed"] and meta.parity["max_abs_error"] <= 1e-4
    assert meta.parity["simplified"]["uint8_cast_first"] == ["image"]
    model = onnx.load(str(tmp_path / "b" / "policy.onnx"))
    consumers = [n for n in model.graph.node if "image" in n.input]
    assert [n.op_type for n in consumers] == ["Cast"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
