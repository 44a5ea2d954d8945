"""Backends: onnxruntime on the tiny bundles, TensorRT against a fake `tensorrt` + `cuda` pair that
records calls and computes the same policy through real host-memory "device" pointers."""

import ctypes
import logging
import sys
import types

import numpy as np
import pytest

from clamkit.bundle import read_meta, sha256_file, write_meta
from clamkit.errors import BundleError, MissingDependency
from clamkit.robot.fake import FakeRobot
from clamkit.runtime.backends import OrtBackend, TrtBackend, find_engine, make_backend
from clamkit.runtime.loop import LoopOptions, run_loop

GPU = "NVIDIA H100 80GB HBM3"
TRT_VERSION = "10.3.0"


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


# ----------------------------------------------------------------------------- fake TensorRT


class FakeCuda:
    """cuda-python's runtime API over host memory: 'device' pointers are ctypes buffers."""

    class cudaMemcpyKind:  # noqa: N801 - mirrors cuda-python
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    class Stream:
        def __int__(self):
            return 0xC0FFEE

    def __init__(self):
        self.calls, self.buffers = [], {}

    def cudaSetDevice(self, dev):
        self.calls.append(("cudaSetDevice", dev))
        return (0,)

    def cudaGetDeviceProperties(self, dev):
        return (0, types.SimpleNamespace(name=GPU.encode()))

    def cudaMalloc(self, n):
        buf = ctypes.create_string_buffer(n)
        self.buffers[ctypes.addressof(buf)] = buf
        self.calls.append(("cudaMalloc", n))
        return (0, ctypes.addressof(buf))

    def cudaFree(self, ptr):
        self.calls.append(("cudaFree", ptr))
        self.buffers.pop(ptr)
        return (0,)

    def cudaStreamCreate(self):
        self.calls.append(("cudaStreamCreate",))
        return (0, self.Stream())

    def cudaStreamDestroy(self, s):
        self.calls.append(("cudaStreamDestroy",))
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        assert isinstance(stream, self.Stream)
        ctypes.memmove(dst, src, n)
        self.calls.append(("cudaMemcpyAsync", kind, n))
        return (0,)

    def cudaStreamSynchronize(self, stream):
        self.calls.append(("cudaStreamSynchronize",))
        return (0,)


def fake_tensorrt(W: np.ndarray, calls: list):
    """A tensorrt module whose engine computes action = tanh(state @ W), reading and writing the
    addresses the backend bound, as a real engine would on the GPU."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = TRT_VERSION
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.float32 = "float32"
    trt.nptype = lambda dt: {"float32": np.float32}[dt]

    class Logger:
        WARNING = 2

        def __init__(self, level):
            calls.append(("Logger", level))

    class Context:
        def __init__(self):
            self.addr, self.shapes = {}, {}

        def set_input_shape(self, name, shape):
            calls.append(("set_input_shape", name, tuple(shape)))
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return (self.shapes["state"][0], W.shape[1])

        def set_tensor_address(self, name, ptr):
            calls.append(("set_tensor_address", name))
            self.addr[name] = ptr

        def execute_async_v3(self, stream_handle):
            calls.append(("execute_async_v3", stream_handle))
            x = np.ctypeslib.as_array((ctypes.c_float * W.shape[0]).from_address(self.addr["state"]))
            y = np.ctypeslib.as_array((ctypes.c_float * W.shape[1]).from_address(self.addr["action"]))
            y[:] = np.tanh(x @ W)
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ["state", "action"][i]

        def get_tensor_mode(self, name):
            return "INPUT" if name == "state" else "OUTPUT"

        def get_tensor_dtype(self, name):
            return "float32"

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            calls.append(("Runtime",))

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize_cuda_engine", data))
            return Engine() if data == b"fake-engine" else None

    trt.Logger, trt.Runtime = Logger, Runtime
    return trt


@pytest.fixture
def fake_trt(monkeypatch):
    calls = []
    cuda = FakeCuda()
    W = np.concatenate([-np.eye(2), np.eye(2)]).astype(np.float32) * 5.0  # the state bundle's weights
    pkg, bindings, runtime = types.ModuleType("cuda"), types.ModuleType("cuda.bindings"), types.ModuleType("cuda.bindings.runtime")
    for name in dir(cuda):
        if name.startswith("cuda"):
            setattr(runtime, name, getattr(cuda, name))
    pkg.bindings, bindings.runtime = bindings, runtime
    monkeypatch.setitem(sys.modules, "cuda", pkg)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(W, calls))
    return types.SimpleNamespace(calls=calls, cuda=cuda)


ENGINE = f"policy.nvidia-h100-80gb-hbm3-trt{TRT_VERSION}-fp16.engine"  # as clam-export --trt names it


def _add_engines(bundle, record: dict | None = None):
    (bundle / f"policy.nvidia-a100-sxm4-40gb-trt{TRT_VERSION}-fp16.engine").write_bytes(b"other-gpu")
    (bundle / f"policy.nvidia-h100-80gb-hbm3-trt{TRT_VERSION}-fp32.engine").write_bytes(b"fp32")
    (bundle / ENGINE).write_bytes(b"fake-engine")
    if record is not None:  # the parity record clam-export --trt writes into clam.json
        meta = read_meta(bundle)
        meta.parity["tensorrt"] = {ENGINE: {"passed": True, "onnx_sha256": meta.onnx_sha256, "max_abs_error": 1e-4,
                                            "engine_sha256": sha256_file(bundle / ENGINE), "precision": "fp16"} | record}
        write_meta(bundle, meta)


def test_find_engine_picks_this_gpu_and_version(bundles):
    b = bundles("state")
    with pytest.raises(BundleError, match="no TensorRT engine"):
        find_engine(b, TRT_VERSION, GPU)
    _add_engines(b)
    assert find_engine(b, TRT_VERSION, GPU).name == ENGINE
    with pytest.raises(BundleError, match="no engine for GPU"):
        find_engine(b, "10.9.0", GPU)


def test_trt_backend_runs_the_engine_by_tensor_name(bundles, fake_trt):
    b = bundles("state", dim=2, gain=5.0)
    _add_engines(b, record={})
    be = make_backend(b, "trt")
    assert isinstance(be, TrtBackend) and be.name == f"trt:{TRT_VERSION}"
    s = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    with OrtBackend(b) as ort_be:
        np.testing.assert_allclose(be.infer({"state": s}), ort_be.infer({"state": s}), rtol=1e-5)
    calls = fake_trt.calls
    assert ("deserialize_cuda_engine", b"fake-engine") in calls
    assert ("set_input_shape", "state", (1, 4)) in calls
    assert {c[1] for c in calls if c[0] == "set_tensor_address"} == {"state", "action"}
    assert ("execute_async_v3", 0xC0FFEE) in calls
    kinds = [c[1] for c in fake_trt.cuda.calls if c[0] == "cudaMemcpyAsync"]
    assert kinds == [1, 2]  # one host->device (state), one device->host (action) per infer
    assert fake_trt.cuda.calls[-1] == ("cudaStreamSynchronize",)
    summary = run_loop(FakeRobot(dim=2, max_steps=30), be, None, LoopOptions(hz=0))  # the same loop as ORT
    assert summary["backend"] == be.name and summary["success_rate"] == 1.0
    be.close()
    assert fake_trt.cuda.buffers == {}  # all device memory freed
    assert ("cudaStreamDestroy",) in fake_trt.cuda.calls


def test_trt_rejects_an_engine_it_cannot_deserialise(bundles, fake_trt):
    b = bundles("state")
    (b / ENGINE).write_bytes(b"corrupt")
    with pytest.raises(BundleError, match="cannot deserialise"):
        TrtBackend(b)
    assert isinstance(make_backend(b, "auto"), OrtBackend)  # auto falls back


@pytest.mark.parametrize("record, match", [({"passed": False}, "failed its parity"),
                                           ({"onnx_sha256": "0" * 64}, "another policy.onnx"),
                                           ({"engine_sha256": "0" * 64}, "does not match the engine")])
def test_trt_refuses_engines_whose_parity_record_disagrees(bundles, fake_trt, record, match):
    b = bundles("state")
    _add_engines(b, record=record)
    with pytest.raises(BundleError, match=match):
        TrtBackend(b)


def test_auto_prefers_trt_when_it_works(bundles, fake_trt):
    b = bundles("state")
    _add_engines(b)
    assert isinstance(make_backend(b, "auto"), TrtBackend)
