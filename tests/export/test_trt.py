"""TensorRT engine build against a fake `tensorrt` (the real one cannot be installed here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import clamkit.export.trt as trtmod
import clamkit.runtime.trt as rt
from clamkit.bundle import read_meta
from clamkit.errors import BundleError, MissingDependency
from clamkit.export.parity import PARITY_NAME, ParitySet
from clamkit.pipeline import export_main as main
from clamkit.runtime.backends import TrtBackend, make_backend

ENGINE32 = "policy.nvidia-geforce-rtx-4090-trt10.3.0-fp32.engine"
ENGINE16 = "policy.nvidia-geforce-rtx-4090-trt10.3.0-fp16.engine"


@pytest.fixture
def bundle(state_bundle, tmp_path):
    b = tmp_path / "bundle"
    shutil.copytree(state_bundle, b)
    return b


def _trt(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_fp32_build_profile_workspace_cache_and_parity(fake_trt, bundle):
    res = _trt([bundle, "--trt", "--batch-max", "8", "--trt-workspace", "256"])
    assert res.exit_code == 0, res.output + res.stderr
    assert "engine" in res.output and ENGINE32 in res.output

    assert ("set_flag", "FP16") not in fake_trt.calls  # FP16 only with --fp16
    assert ("clear_flag", "TF32") in fake_trt.calls  # fp32 means fp32
    assert ("set_memory_pool_limit", "WORKSPACE", 256 << 20) in fake_trt.calls
    assert fake_trt.called("set_shape") == [("set_shape", "state", (1, 39), (1, 39), (8, 39))]
    assert fake_trt.called("create_network") == [("create_network", 0)]
    assert fake_trt.called("create_timing_cache") == [("create_timing_cache", b"")]  # no cache yet

    assert (bundle / ENGINE32).is_file()
    assert (bundle / "timing.nvidia-geforce-rtx-4090-trt10.3.0.cache").read_bytes() == b"+timing"
    meta = read_meta(bundle)  # still valid, onnx untouched
    rec = meta.parity["tensorrt"][ENGINE32]
    assert rec["passed"] and rec["max_abs_error"] <= 1e-4 and rec["cosine"] >= 0.9999
    assert rec["precision"] == "fp32" and rec["batch_max"] == 8 and rec["gpu"] == "NVIDIA GeForce RTX 4090"
    assert rec["tensorrt"] == "10.3.0" and rec["onnx_sha256"] == meta.onnx_sha256 and rec["reused"] is False
    assert rec["batch_sizes"] == [1, 8] and rec["profile"]["state"]["max"] == [8, 39]
    assert meta.parity["passed"] and meta.parity["exporter"]  # the ONNX report is kept

    # a profile wider than the bundle's 16 reference rows is still checked at its max batch
    assert _trt([bundle, "--trt", "--batch-max", "40"]).exit_code == 0
    assert read_meta(bundle).parity["tensorrt"][ENGINE32]["batch_sizes"] == [1, 40]


def test_fp16_flag_and_engine_name(fake_trt, bundle):
    res = _trt([bundle, "--trt", "--fp16"])
    assert res.exit_code == 0, res.output + res.stderr
    assert ("set_flag", "FP16") in fake_trt.calls and ("clear_flag", "TF32") not in fake_trt.calls
    assert fake_trt.called("build_serialized_network") == [("build_serialized_network", ["FP16"])]
    assert fake_trt.called("set_shape")[0][2:] == ((1, 39), (1, 39), (16, 39))
    rec = read_meta(bundle).parity["tensorrt"][ENGINE16]
    assert (bundle / ENGINE16).is_file() and not (bundle / ENGINE32).exists()
    assert rec["precision"] == "fp16" and rec["passed"] and rec["tolerance"]["max_abs_error"] > 1e-4


def test_engine_key_separates_gpu_version_precision(fake_trt, bundle):
    assert _trt([bundle, "--trt"]).exit_code == 0
    fake_trt.cudart.gpu = "NVIDIA Jetson AGX Orin"
    assert _trt([bundle, "--trt"]).exit_code == 0
    fake_trt.__version__ = "10.7.1"
    assert _trt([bundle, "--trt", "--fp16"]).exit_code == 0
    engines = sorted(p.name for p in bundle.glob("*.engine"))
    assert engines == ["policy.nvidia-geforce-rtx-4090-trt10.3.0-fp32.engine",
                       "policy.nvidia-jetson-agx-orin-trt10.3.0-fp32.engine",
                       "policy.nvidia-jetson-agx-orin-trt10.7.1-fp16.engine"]
    assert len(fake_trt.called("build_serialized_network")) == 3
    assert sorted(read_meta(bundle).parity["tensorrt"]) == engines


def test_cached_engine_reused_and_timing_cache_loaded(fake_trt, bundle):
    assert _trt([bundle, "--trt"]).exit_code == 0
    res = _trt([bundle, "--trt"])
    assert res.exit_code == 0 and "reused" in res.output
    assert len(fake_trt.called("build_serialized_network")) == 1  # not rebuilt
    assert len(fake_trt.called("deserialize_cuda_engine")) == 2  # but parity re-checked
    assert read_meta(bundle).parity["tensorrt"][ENGINE32]["reused"] is True

    # another batch range (or --rebuild) builds again, starting from the saved timing cache
    assert _trt([bundle, "--trt", "--batch-max", "4"]).exit_code == 0
    assert _trt([bundle, "--trt", "--batch-max", "4", "--rebuild"]).exit_code == 0
    assert len(fake_trt.called("build_serialized_network")) == 3
    assert fake_trt.called("create_timing_cache")[1:] == [("create_timing_cache", b"+timing"),
                                                          ("create_timing_cache", b"+timing+timing")]

    # a tampered engine file is not served
    (bundle / ENGINE32).write_bytes(b"garbage")
    assert _trt([bundle, "--trt", "--batch-max", "4"]).exit_code == 0
    assert len(fake_trt.called("build_serialized_network")) == 4


def test_parser_error_names_failing_node(fake_trt, bundle):
    import onnx

    fake_trt.fail_node = 2
    node = onnx.load(str(bundle / "policy.onnx")).graph.node[2]
    res = _trt([bundle, "--trt"])
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "cannot parse policy.onnx" in line
    assert f"node 2 '{node.name}' ({node.op_type})" in line and f"unsupported operator {node.op_type}" in line
    assert not list(bundle.glob("*.engine"))


def test_engine_parity_failure_deletes_engine(fake_trt, bundle):
    fake_trt.output_bias = 1e-2
    res = _trt([bundle, "--trt"])
    assert res.exit_code == 2 and "TensorRT" in res.stderr and "parity check failed" in res.stderr
    assert not (bundle / ENGINE32).exists()
    rec = read_meta(bundle).parity["tensorrt"][ENGINE32]  # bundle (ONNX) still valid; the failure is recorded
    assert rec["passed"] is False and rec["max_abs_error"] > 1e-4


def test_run_with_trt_builds_after_onnx(fake_trt, standin, image_run, tmp_path):
    """RUN --trt: export, check, then build; image input profile keeps H, W, C fixed."""
    out = tmp_path / "b"
    res = _trt([image_run, "--out", out, "--trt", "--exporter", "legacy", "--batch-max", "4"])
    assert res.exit_code == 0, res.output + res.stderr
    assert set(fake_trt.called("set_shape")) == {("set_shape", "image", (1, 32, 32, 3), (1, 32, 32, 3), (4, 32, 32, 3)),
                                                 ("set_shape", "state", (1, 5), (1, 5), (4, 5))}
    assert read_meta(out).parity["tensorrt"][ENGINE32]["passed"]


def test_without_tensorrt_run_trt_exits_2_after_valid_onnx(no_trt, standin, state_run, tmp_path):
    out = tmp_path / "b"
    res = _trt([state_run, "--out", out, "--trt", "--exporter", "legacy"])
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "tensorrt is not installed" in line and "clamkit[trt]" in line and f"clam-export {out} --trt" in line
    meta = read_meta(out)  # the ONNX bundle is written and valid
    assert meta.valid and "tensorrt" not in meta.parity
    assert "parity" in res.output  # the ONNX summary was printed before the error


def test_bundle_trt_path_is_torch_free(state_bundle, tmp_path):
    """`clam-export BUNDLE --trt` on the robot: the whole build + engine parity imports no torch
    (subprocess with the fake TensorRT), and without TensorRT it stops with the one-line hint."""
    b = tmp_path / "b"
    shutil.copytree(state_bundle, b)
    fake = str(Path(__file__).parents[1] / "fake_trt.py")
    code = textwrap.dedent(f"""
        import importlib.util, sys
        if sys.argv[1] == "fake":
            spec = importlib.util.spec_from_file_location("fake_trt", {fake!r})
            fake = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(fake)
            fake.install(fake.FakeTRT(cudart=fake.make_fake_cudart()))
        else:
            sys.modules["tensorrt"] = None
        from clamkit.export.cli import main
        try:
            main([{str(b)!r}, "--trt"])
        except SystemExit as e:
            print("EXIT", e.code)
        print("TORCH" if "torch" in sys.modules else "NOTORCH")
    """)
    p = subprocess.run([sys.executable, "-c", code, "absent"], capture_output=True, text=True, timeout=120)
    assert "EXIT 2" in p.stdout and "NOTORCH" in p.stdout, p.stdout + p.stderr
    assert f"clam-export {b} --trt" in p.stderr
    p = subprocess.run([sys.executable, "-c", code, "fake"], capture_output=True, text=True, timeout=120)
    assert "EXIT 0" in p.stdout and "NOTORCH" in p.stdout, p.stdout + p.stderr
    assert read_meta(b).parity["tensorrt"][ENGINE32]["passed"]


def test_gpu_name_falls_back_to_nvidia_smi(monkeypatch):
    def no_cuda():
        raise MissingDependency("no cuda-python")

    monkeypatch.setattr(rt, "import_cudart", no_cuda)
    monkeypatch.setattr(rt.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "NVIDIA H100 80GB HBM3\n", ""))
    assert rt.gpu_name() == "NVIDIA H100 80GB HBM3"


def test_one_engine_name_rule_for_builder_and_runtime(tmp_path):
    """The builder names the file with engine_name and the runtime looks for exactly that name (there were two
    rules: one kept the dots of '10.3.0', the other dropped them)."""
    name = rt.engine_name("NVIDIA H100 80GB HBM3", "10.3.0", True)
    assert name == "policy.nvidia-h100-80gb-hbm3-trt10.3.0-fp16.engine"
    assert rt.sanitize("  Orin (nvgpu)/x ") == "orin-nvgpu-x"
    assert rt.engine_name("Orin (nvgpu)", "10.3.0.post1+cu12", False) == "policy.orin-nvgpu-trt10.3.0.post1-cu12-fp32.engine"
    (tmp_path / "policy.nvidia-h100-80gb-hbm3-trt1030-fp16.engine").write_bytes(b"")  # dots dropped: not this version
    with pytest.raises(BundleError, match="no engine for GPU"):
        rt.find_engine(tmp_path, "10.3.0", "NVIDIA H100 80GB HBM3")
    (tmp_path / name).write_bytes(b"")
    assert rt.find_engine(tmp_path, "10.3.0", "NVIDIA H100 80GB HBM3").name == name


def test_cli_usage_errors(state_bundle, standin, state_run):
    res = _trt([state_run, "--fp16"])
    assert res.exit_code == 2 and "add --trt" in res.stderr
    res = _trt([state_bundle])
    assert res.exit_code == 2 and "already a bundle" in res.stderr
    res = _trt(["--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "clam-export" in res.output and "--trt" in res.output


def test_failed_build_leaves_no_engine_or_temp(fake_trt, bundle, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("killed mid-build")

    fake_trt.Builder.build_serialized_network = boom
    with pytest.raises(RuntimeError):
        trtmod.build_for_bundle(bundle)
    assert not [p for p in bundle.iterdir() if "engine" in p.name]
    assert "tensorrt" not in read_meta(bundle).parity


def test_runtime_runs_the_engine_clam_export_built(fake_trt, bundle):
    """End to end on the one fake: clam-export --trt builds the engine from policy.onnx, TrtBackend finds it by
    name, accepts its parity record and computes the same actions as onnxruntime on the same graph."""
    assert _trt([bundle, "--trt", "--fp16"]).exit_code == 0
    path = rt.find_engine(bundle, "10.3.0", "NVIDIA GeForce RTX 4090")
    assert path.name == ENGINE16
    rt.check_engine_record(read_meta(bundle), path)  # raises on a failed / stale record
    ps = ParitySet.load(bundle / PARITY_NAME)
    with make_backend(bundle, "trt") as trt_be, make_backend(bundle, "ort") as ort_be:
        assert isinstance(trt_be, TrtBackend) and trt_be.engine_path == path
        for i in range(3):
            obs = {k: v[i] for k, v in ps.inputs.items()}
            np.testing.assert_allclose(trt_be.infer(obs), ort_be.infer(obs), atol=2e-3)  # fp16 engine
            np.testing.assert_allclose(trt_be.infer(obs), ps.action[i], atol=2e-3)  # and torch's recorded answer
