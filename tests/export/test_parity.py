"""The parity check catches a graph that is not the torch policy, and fails loudly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

import clamkit.export.onnx_export as ox
from clamkit.bundle import read_meta
from clamkit.errors import BundleError
from clamkit.pipeline import export_main as main
from clamkit.export.parity import ONNX_TOLERANCE, OnnxRunner, ParityError, ParitySet, check_backend, compare, summarize


def _corrupt_largest_initializer(path, scale=1.05):
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init) * scale
    init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
    onnx.save(model, str(path))


def test_compare_numbers():
    a = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    assert compare(a, a) == {"max_abs_error": 0.0, "cosine": pytest.approx(1.0)}
    r = compare(a, a + np.array([[0, 1e-3], [0, 0]], np.float32))
    assert r["max_abs_error"] == pytest.approx(1e-3, rel=1e-3) and r["cosine"] < 1.0
    assert compare(np.zeros((2, 2)), np.zeros((2, 2)))["cosine"] == 1.0  # zero actions agree
    assert compare(np.zeros((2, 2)), np.full((2, 2), np.nan))["max_abs_error"] == float("inf")
    with pytest.raises(ParityError, match="shape"):
        compare(np.zeros((2, 4)), np.zeros((2, 3)))


def test_corrupted_onnx_initializer_fails_parity(state_bundle, tmp_path):
    """Edit a weight inside policy.onnx after export: the check against torch's outputs must fail."""
    b = tmp_path / "b"
    shutil.copytree(state_bundle, b)
    ps = ParitySet.load(b / "parity.npz")
    ok = summarize(check_backend("onnx", OnnxRunner(b / "policy.onnx"), [ps], ONNX_TOLERANCE), ONNX_TOLERANCE)
    assert ok["passed"]
    _corrupt_largest_initializer(b / "policy.onnx")
    bad = summarize(check_backend("onnx", OnnxRunner(b / "policy.onnx"), [ps], ONNX_TOLERANCE), ONNX_TOLERANCE)
    assert not bad["passed"] and bad["max_abs_error"] > 1e-4
    with pytest.raises(BundleError, match="sha256"):  # and the runtime refuses the edited file anyway
        read_meta(b)


def test_torch_model_differs_from_graph_fails(standin, state_run, state_bundle):
    """The torch policy used as reference differs from the exported graph (a weight nudged): check fails."""
    policy, _ = standin.load_policy(state_run)
    with torch.no_grad():
        policy.pi[0].weight[0, 0] += 0.5
    obs = standin.sample_observations(state_run, 16)
    sets = ox.parity_sets(policy, ["state"], obs, 16)
    report = summarize(check_backend("onnx", OnnxRunner(state_bundle / "policy.onnx"), sets, ONNX_TOLERANCE), ONNX_TOLERANCE)
    assert not report["passed"] and report["max_abs_error"] > 1e-4


def test_export_with_corrupted_graph_fails_loudly(standin, state_run, tmp_path, monkeypatch):
    """Full CLI: the written graph is corrupted before the check -> exit 2, one line, OUT untouched,
    the failed attempt kept as OUT.failed with valid=false and the numbers."""
    real_annotate = ox.annotate

    def annotate_then_corrupt(path, props):
        real_annotate(path, props)
        _corrupt_largest_initializer(path)

    monkeypatch.setattr(ox, "annotate", annotate_then_corrupt)
    out = tmp_path / "b"
    res = CliRunner().invoke(main, [str(state_run), "--out", str(out), "--exporter", "legacy"])
    assert res.exit_code == 2, res.output
    assert "parity check failed" in res.stderr and "max|Δ|" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output
    assert not out.exists()
    failed = json.loads((tmp_path / "b.failed" / "clam.json").read_text())
    assert failed["valid"] is False and failed["parity"]["passed"] is False and failed["parity"]["max_abs_error"] > 1e-4
    with pytest.raises(BundleError, match="not marked valid"):
        read_meta(tmp_path / "b.failed")


def test_failed_export_keeps_previous_bundle(standin, state_run, tmp_path, monkeypatch):
    out = tmp_path / "b"
    assert CliRunner().invoke(main, [str(state_run), "--out", str(out), "--exporter", "legacy"]).exit_code == 0
    before = read_meta(out).onnx_sha256
    real = ox.export_onnx

    def export_then_drift(policy, *a, **k):  # torch model changes after the graph was written
        used = real(policy, *a, **k)
        with torch.no_grad():
            policy.dec[2].bias += 0.01
        return used

    monkeypatch.setattr(ox, "export_onnx", export_then_drift)
    res = CliRunner().invoke(main, [str(state_run), "--out", str(out), "--exporter", "legacy"])
    assert res.exit_code == 2 and "parity check failed" in res.stderr
    assert read_meta(out).onnx_sha256 == before  # the good bundle is still there and valid
