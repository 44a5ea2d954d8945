"""clam-export RUN: the bundle, its graph and its parity report, for both exporters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from clamkit.bundle import read_meta
from clamkit.errors import UserError
from clamkit.pipeline import export_main as main
from clamkit.export.exporter import ExportOptions, export_run


def _ort(bundle):
    return ort.InferenceSession(str(bundle / "policy.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
@pytest.mark.parametrize("kind", ["state", "image"])
def test_cli_writes_valid_bundle_with_parity(kind, exporter, standin, state_run, image_run, tmp_path):
    run = state_run if kind == "state" else image_run
    out = tmp_path / "bundle"
    res = CliRunner().invoke(main, [str(run), "--out", str(out), "--exporter", exporter])
    assert res.exit_code == 0, res.output + str(res.exception)
    assert "valid" in res.output and "parity" in res.output

    meta = read_meta(out)  # valid, hash matches
    p = meta.parity
    assert p["exporter"] == exporter and p["opset"] == 18 and p["batch_sizes"] == [1, 16]
    assert p["max_abs_error"] <= 1e-4 and p["cosine"] >= 0.9999 and p["passed"]
    assert {(c["batch"], c["source"]) for c in p["checks"]} == {(1, "recorded"), (16, "recorded"), (1, "random"), (16, "random")}
    assert all(c["max_abs_error"] <= 1e-4 and c["cosine"] >= 0.9999 for c in p["checks"])
    assert meta.inputs == (["state"] if kind == "state" else ["image", "state"])
    assert meta.fps == 12.5 and meta.la_dim == 8 and meta.action.semantics == "metaworld_xyz+gripper"
    assert meta.provenance["dataset_fingerprint"] == "deadbeef" and "export" in meta.provenance
    assert not list(tmp_path.glob(".bundle.tmp-*")), "temp dir left behind"

    # the graph: raw observation names in, "action" out, a dynamic batch axis (batch 3 was never checked)
    sess = _ort(out)
    assert [i.name for i in sess.get_inputs()] == meta.inputs and [o.name for o in sess.get_outputs()] == ["action"]
    assert all(isinstance(i.shape[0], str) for i in sess.get_inputs())
    policy, _ = standin.load_policy(run)
    obs = standin.sample_observations(run, 3)
    got = sess.run(None, obs)[0]
    with torch.no_grad():
        want = policy(*[torch.from_numpy(obs[k]) for k in meta.inputs]).numpy()
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_graph_takes_raw_uint8_frames(standin, image_run, tmp_path):
    """Preprocessing lives in the graph: the same uint8 camera frame gives the same action in torch and ORT."""
    loader = standin
    out = tmp_path / "b"
    export_run(image_run, out, ExportOptions(exporter="legacy"), loader=loader)
    sess = _ort(out)
    assert dict((i.name, i.type) for i in sess.get_inputs()) == {"image": "tensor(uint8)", "state": "tensor(float)"}
    policy, _ = loader.load_policy(image_run)
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)  # exactly what a camera hands over
    state = rng.normal(size=(1, 5)).astype(np.float32)
    a_onnx = sess.run(["action"], {"image": frame, "state": state})[0]
    with torch.no_grad():
        a_torch = policy(torch.from_numpy(frame), torch.from_numpy(state)).numpy()
    np.testing.assert_allclose(a_onnx, a_torch, atol=1e-5)
    assert np.abs(a_onnx).max() > 1e-3  # not trivially zero


def test_state_export_cold_process(state_run, tmp_path):
    """A state policy (1024x2 MLP) exports from a cold process (python + torch import) with the default
    exporter, parity included. (Its time is a benchmark figure, export_s in benchmarks/latency.py.)"""
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("export_standins", {str(Path(__file__).with_name("conftest.py"))!r})
        standins = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(standins)
        import clamkit.pipeline as pipeline
        pipeline.policy_loader = standins.StandInLoader
        pipeline.export_main([{str(state_run)!r}, "--out", {str(tmp_path / "b")!r}])
    """)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    print(f"cold state export (default exporter) took {wall:.2f} s wall")
    assert read_meta(tmp_path / "b").parity["exporter"] == "dynamo"


def test_default_out_is_run_bundle_and_policy_pt_accepted(standin, state_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(state_run, run)
    res = CliRunner().invoke(main, [str(run / "policy.pt"), "--exporter", "legacy", "--batch-max", "4"])
    assert res.exit_code == 0, res.output
    assert read_meta(run / "bundle").parity["batch_sizes"] == [1, 4]


def test_reexport_replaces_bundle_but_not_foreign_dirs(standin, state_run, tmp_path):
    loader = standin
    out = tmp_path / "b"
    export_run(state_run, out, ExportOptions(exporter="legacy"), loader=loader)
    (out / "policy.some-gpu-trt10.0-fp32.engine").write_bytes(b"stale")  # engines of the old graph must go
    export_run(state_run, out, ExportOptions(exporter="legacy", batch_max=8), loader=loader)
    assert read_meta(out).parity["batch_sizes"] == [1, 8]
    assert not list(out.glob("*.engine"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "old/temp dirs left behind"

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="not a clamkit bundle"):
        export_run(state_run, foreign, ExportOptions(exporter="legacy"), loader=loader)
    assert (foreign / "cat.jpg").exists() and not (foreign / "clam.json").exists()


def test_parity_npz_is_the_reference(state_bundle):
    """parity.npz carries recorded observations + torch actions, for the engine check on the robot."""
    from clamkit.export.parity import ParitySet

    ps = ParitySet.load(state_bundle / "parity.npz")
    assert ps.source == "recorded" and ps.batch == 16 and ps.inputs["state"].shape == (16, 39)
    np.testing.assert_allclose(_ort(state_bundle).run(None, ps.inputs)[0], ps.action, atol=1e-5)
    assert json.loads((state_bundle / "clam.json").read_text())["parity"]["reference"] == "parity.npz"


def test_auto_falls_back_to_legacy_and_says_so(standin, state_run, tmp_path, monkeypatch, caplog):
    import clamkit.export.onnx_export as ox

    def dynamo_cannot(*a, **k):
        raise RuntimeError("data-dependent control flow")

    monkeypatch.setattr(ox, "_export_dynamo", dynamo_cannot)
    res = CliRunner().invoke(main, [str(state_run), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert read_meta(tmp_path / "b").parity["exporter"] == "legacy"
    assert "exporter  legacy" in res.output
    assert any("dynamo exporter failed" in r.message and "trying legacy" in r.message for r in caplog.records)

    res = CliRunner().invoke(main, [str(state_run), "--out", str(tmp_path / "c"), "--exporter", "dynamo"])
    assert res.exit_code == 2 and "torch.onnx.export failed: dynamo: RuntimeError: data-dependent control flow" in res.stderr


def test_help_offers_only_options_that_work(standin, state_run, tmp_path):
    """Regression: --with-idm was offered in --help but always exited 2 (there is no IDM loader); it is gone."""
    assert "--with-idm" not in CliRunner().invoke(main, ["--help"]).output
    res = CliRunner().invoke(main, [str(state_run), "--out", str(tmp_path / "b"), "--exporter", "legacy", "--with-idm"])
    assert res.exit_code == 2 and "No such option" in res.output and not (tmp_path / "b").exists()


def test_opset_recorded_as_written(standin, state_run, tmp_path):
    res = CliRunner().invoke(main, [str(state_run), "--out", str(tmp_path / "b"), "--exporter", "legacy", "--opset", "17"])
    assert res.exit_code == 0, res.output
    assert read_meta(tmp_path / "b").parity["opset"] == 17
    import onnx

    assert {o.version for o in onnx.load(str(tmp_path / "b" / "policy.onnx")).opset_import if o.domain == ""} == {17}
