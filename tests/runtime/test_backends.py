"""Backends: onnxruntime on the tiny bundles; TensorRT against the one fake `tensorrt` + `cuda` pair
(tests/fake_trt.py), whose engines are built by clam-export's builder and run the bundle's ONNX graph."""

import logging
import sys
import time

import numpy as np
import pytest

from clamkit.bundle import read_meta, sha256_file, write_meta
from clamkit.errors import BundleError, MissingDependency
from clamkit.robot.fake import FakeRobot
import clamkit.runtime.trt as rt
from clamkit.runtime.backends import OrtBackend, TrtBackend, make_backend
from clamkit.runtime.loop import LoopOptions, run_loop

GPU = "NVIDIA H100 80GB HBM3"
TRT_VERSION = "10.3.0"  # the fake's
ENGINE = f"policy.nvidia-h100-80gb-hbm3-trt{TRT_VERSION}-fp16.engine"  # as clam-export --trt names it


def test_ort_state_bundle_matches_numpy(bundles):
    b = bundles("state", dim=2, gain=5.0)
    with OrtBackend(b, device="cpu", threads=1) as be:
        s = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
        want = np.tanh(5.0 * (s[2:] - s[:2]))
        np.testing.assert_allclose(be.infer({"state": s}), want, rtol=1e-5)
        assert be.name == "ort:cpu" and be.infer({"state": s}).shape == (2,)


def test_ort_image_bundle_takes_uint8_frames(bundles):
    with OrtBackend(bundles("image", hw=(16, 16))) as be:
        a = be.infer({"image": np.full((16, 16, 3), 255, np.uint8)})
        W = (np.arange(6, dtype=np.float32).reshape(3, 2) - 2) * 0.1
        np.testing.assert_allclose(a, np.tanh(np.ones(3) @ W), rtol=1e-5, atol=1e-6)


def test_ort_leaves_the_cpu_to_other_threads_between_ticks(bundles):
    """No intra-op thread spins after a call: between ticks the camera reader and the robot's driver need
    the cores (onnxruntime's default spinning burnt ~30 ms of CPU after each 640x480 frame)."""
    with OrtBackend(bundles("conv", hw=(480, 640)), device="cpu", threads=2) as be:
        frame = {"image": np.full((480, 640, 3), 7, np.uint8)}
        burnt = []
        for _ in range(5):
            be.infer(frame)
            c0 = time.process_time()
            time.sleep(0.1)
            burnt.append(time.process_time() - c0)
    assert np.median(burnt) < 0.005, burnt


def test_ort_rejects_a_bundle_whose_graph_does_not_match(bundles, tmp_path):
    b = bundles("state")
    (b / "policy.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(BundleError):
        make_backend(b)  # sha256 no longer matches clam.json


def test_trt_without_tensorrt_is_a_missing_dependency(bundles, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError, even where it is installed
    with pytest.raises(MissingDependency, match="tensorrt"):
        make_backend(bundles("state"), "trt")


def test_auto_falls_back_to_ort_with_a_warning(bundles, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with caplog.at_level(logging.WARNING):
        be = make_backend(bundles("state"), "auto")
    assert isinstance(be, OrtBackend)
    assert any("falling back to onnxruntime" in r.message for r in caplog.records)


# ----------------------------------------------------------------------------- TensorRT (tests/fake_trt.py)


def build(bundle, fake_trt, fp16=True, record: dict | None = None):
    """Build the bundle's engine with clam-export's builder against the shared fake (the engine runs
    policy.onnx), named as clam-export names it, with the parity record clam-export would write."""
    from clamkit.export.trt import build_engine

    name = rt.engine_name(fake_trt.cudart.gpu, fake_trt.__version__, fp16)
    cache = bundle / rt.timing_cache_name(fake_trt.cudart.gpu, fake_trt.__version__)
    build_engine(fake_trt, bundle / "policy.onnx", bundle / name, cache, batch_max=4, fp16=fp16, workspace_mb=64)
    if record is not None:
        meta = read_meta(bundle)
        meta.parity["tensorrt"] = {name: {"passed": True, "onnx_sha256": meta.onnx_sha256, "max_abs_error": 1e-4,
                                          "engine_sha256": sha256_file(bundle / name), "precision": "fp16"} | record}
        write_meta(bundle, meta)
    return bundle / name


def test_find_engine_picks_this_gpu_and_version(bundles):
    b = bundles("state")
    with pytest.raises(BundleError, match="no TensorRT engine"):
        rt.find_engine(b, TRT_VERSION, GPU)
    (b / f"policy.nvidia-a100-sxm4-40gb-trt{TRT_VERSION}-fp16.engine").write_bytes(b"other-gpu")
    (b / f"policy.nvidia-h100-80gb-hbm3-trt{TRT_VERSION}-fp32.engine").write_bytes(b"fp32")
    assert rt.find_engine(b, TRT_VERSION, GPU).name == f"policy.nvidia-h100-80gb-hbm3-trt{TRT_VERSION}-fp32.engine"
    (b / ENGINE).write_bytes(b"fp16")
    assert rt.find_engine(b, TRT_VERSION, GPU).name == ENGINE  # fp16 preferred
    with pytest.raises(BundleError, match="no engine for GPU"):
        rt.find_engine(b, "10.9.0", GPU)


@pytest.fixture
def h100(fake_trt):
    fake_trt.cudart.gpu = GPU
    return fake_trt


@pytest.mark.parametrize("kind", ["state", "image"])
def test_trt_backend_runs_the_engine_built_from_the_bundle(bundles, h100, kind):
    b = bundles(kind)
    assert build(b, h100, fp16=False, record={}).name == ENGINE.replace("fp16", "fp32")
    be = make_backend(b, "trt")
    assert isinstance(be, TrtBackend) and be.name == f"trt:{TRT_VERSION}"
    rng = np.random.default_rng(0)
    with OrtBackend(b) as ort_be:
        for _ in range(3):
            obs = {k: (rng.normal(0, 1, v.shape).astype(np.float32) if v.dtype == "float32"
                       else rng.integers(0, 256, v.shape, dtype=np.uint8)) for k, v in be.meta.observation.keys.items()}
            np.testing.assert_allclose(be.infer(obs), ort_be.infer(obs), rtol=1e-6, atol=1e-7)
    calls, cu = h100.calls, h100.cudart.calls
    assert ("set_input_shape", be.meta.inputs[0], (1, *be.meta.observation.keys[be.meta.inputs[0]].shape)) in calls
    assert {c[1] for c in calls if c[0] == "set_tensor_address"} == {*be.meta.inputs, "action"}
    assert ("execute_async_v3", 7) in calls  # the stream handle as an int
    n_malloc = sum(c[0] == "cudaMalloc" for c in cu)
    be.infer(obs)
    assert sum(c[0] == "cudaMalloc" for c in cu) == n_malloc  # buffers are reused tick after tick
    assert cu[-1] == ("cudaStreamSynchronize",)
    be.close()
    assert h100.cudart.memory == {} and ("cudaStreamDestroy",) in cu  # all device memory freed


def test_trt_backend_in_the_loop_makes_its_device_current_on_the_inference_thread(bundles, h100):
    """The loop calls infer() on its worker thread; CUDA's current device is per thread, so an engine on
    device 1 built on the main thread fails there unless the backend sets the device on that thread."""
    b = bundles("state", dim=2, gain=5.0)
    build(b, h100, record={})
    be = TrtBackend(b, device=1)
    summary = run_loop(FakeRobot(dim=2, max_steps=30), be, None, LoopOptions(hz=0, safety={"infer_timeout": 5.0}))
    assert summary["backend"] == be.name and summary["success_rate"] == 1.0  # the same loop as ORT
    threads = {c[2] for c in h100.cudart.calls if c[0] == "cudaSetDevice" and c[1] == 1}
    assert len(threads) == 2  # the building thread and the loop's inference thread
    be.close()


def test_trt_rejects_an_engine_it_cannot_deserialise(bundles, h100):
    b = bundles("state")
    (b / ENGINE).write_bytes(b"corrupt")
    with pytest.raises(BundleError, match="cannot deserialise"):
        TrtBackend(b)
    assert isinstance(make_backend(b, "auto"), OrtBackend)  # auto falls back


@pytest.mark.parametrize("record, match", [({"passed": False}, "failed its parity"),
                                           ({"onnx_sha256": "0" * 64}, "another policy.onnx"),
                                           ({"engine_sha256": "0" * 64}, "does not match the engine")])
def test_trt_refuses_engines_whose_parity_record_disagrees(bundles, h100, record, match):
    b = bundles("state")
    build(b, h100, record=record)
    with pytest.raises(BundleError, match=match):
        TrtBackend(b)


def test_auto_prefers_trt_when_it_works(bundles, h100):
    b = bundles("state")
    build(b, h100)
    assert isinstance(make_backend(b, "auto"), TrtBackend)
