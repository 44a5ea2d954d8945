"""Inference backends: one raw observation (batch 1) in, one action (robot units) out.

    backend = make_backend("bundles/reach", kind="auto")   # TensorRT when it can, else onnxruntime
    action = backend.infer({"state": obs})                 # (A,) float32
    backend.close()

Both backends run the bundle's single graph (DESIGN §5): preprocessing and (de)normalisation live
inside it, so a backend only adds the batch axis, copies into pre-allocated buffers and runs.

- OrtBackend: onnxruntime; CUDA execution provider first when the installed onnxruntime has it,
  else CPU. Session options are tuned for batch-1 latency (all graph optimisations, sequential
  execution, few intra-op threads: spreading a tiny MLP over many cores costs more in
  synchronisation than it saves).
- TrtBackend: a TensorRT >= 10 engine (`policy.<gpu>-trt<version>-<precision>.engine`, built on the
  robot computer by `clam-export --trt`, its parity record in clam.json checked), deserialised and run by tensor name with execute_async_v3 on
  a CUDA stream. Device memory comes from cuda-python (`pip install cuda-python`), imported
  lazily like tensorrt. TensorRT cannot be installed on the development machines (DESIGN §2): this
  class is exercised against a fake `tensorrt` + `cuda` module pair that records the calls, and
  has not yet run on a real GPU.

numpy + onnxruntime only; tensorrt and cuda-python are imported inside the class that needs them.
"""

from __future__ import annotations

import abc
import logging
import os
import re
from pathlib import Path

import numpy as np

from clamkit.bundle import ONNX_NAME, BundleMeta, read_meta, sha256_file
from clamkit.errors import BundleError, MissingDependency, UserError, require

log = logging.getLogger(__name__)

KINDS = ("ort", "trt", "auto")
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(double)": np.float64,
               "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _one_line(e: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (onnxruntime's span several), shortened."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Backend(abc.ABC):
    """Runs the bundle's policy graph on one observation at a time."""

    name: str = "backend"
    meta: BundleMeta

    @abc.abstractmethod
    def infer(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """obs[key] is one raw observation without a batch axis (bundle's shape and dtype);
        returns the action, (A,) float32, in robot units."""

    def close(self) -> None:
        """Release sessions, engines and device memory."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----------------------------------------------------------------------------- onnxruntime


class OrtBackend(Backend):
    """onnxruntime InferenceSession over BUNDLE/policy.onnx.

    device: "auto" (CUDA EP when available, else CPU), "cpu" or "cuda".
    threads: intra-op threads (default min(2, cores)); 1 is best for small MLPs.
    """

    def __init__(self, bundle: str | Path, *, meta: BundleMeta | None = None, device: str = "auto",
                 threads: int | None = None, warmup: int = 3):
        ort = require("onnxruntime", "runtime")
        self.bundle = Path(bundle)
        self.meta = meta or read_meta(self.bundle)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = int(threads or min(2, os.cpu_count() or 1))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # errors only; ORT's warnings about unused initialisers are noise here
        available = ort.get_available_providers()
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
        elif device in ("auto", "cuda"):
            if "CUDAExecutionProvider" in available:
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            elif device == "cuda":
                raise MissingDependency("onnxruntime has no CUDAExecutionProvider here; install onnxruntime-gpu "
                                        "matching your CUDA, or use --backend ort on CPU")
            else:
                providers = ["CPUExecutionProvider"]
        else:
            raise UserError(f"unknown onnxruntime device '{device}' (auto, cpu, cuda)")
        path = self.bundle / ONNX_NAME
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise BundleError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {_one_line(e)})") from None
        self.provider = self.session.get_providers()[0]
        self.name = f"ort:{self.provider.replace('ExecutionProvider', '').lower()}"
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != set(self.meta.inputs):
            raise BundleError(f"{path}: graph inputs {sorted(inputs)} do not match clam.json inputs {sorted(self.meta.inputs)}")
        outputs = [o.name for o in self.session.get_outputs()]
        if "action" not in outputs:
            raise BundleError(f"{path}: graph has no 'action' output (outputs: {outputs})")
        self._outputs = ["action"]
        # Pre-allocated (1, *shape) input buffers: infer() copies into them, no allocation per tick.
        self._feeds: dict[str, np.ndarray] = {}
        for key in self.meta.inputs:
            spec = self.meta.observation.keys[key]
            dtype = _ORT_DTYPES.get(inputs[key].type)
            if dtype is None:
                raise BundleError(f"{path}: input '{key}' has unsupported type {inputs[key].type}")
            if np.dtype(dtype) != np.dtype(spec.dtype):  # the exporter checks this; casting would garble the values
                raise BundleError(f"{path}: input '{key}' is {np.dtype(dtype)} in the graph but {spec.dtype} in "
                                  f"{self.bundle / 'clam.json'}; re-export the bundle")
            self._feeds[key] = np.zeros((1, *spec.shape), dtype)  # (1, *shape)
        # The first runs allocate arenas (kept out of the control loop's first tick) and prove that the graph
        # takes clam.json's shapes and returns (1, action dim): a graph that disagrees fails here, not mid-run.
        for _ in range(max(warmup, 1)):
            try:
                out = self.session.run(self._outputs, self._feeds)[0]
            except Exception as e:  # onnxruntime's own exception types (InvalidArgument, Fail, ...)
                raise BundleError(f"{path}: the graph does not accept the observation spec in {self.bundle / 'clam.json'} "
                                  f"({type(e).__name__}: {_one_line(e)})") from None
            if np.shape(out) != (1, self.meta.action.dim):
                raise BundleError(f"{path}: the graph returns actions of shape {list(np.shape(out))} at batch 1, "
                                  f"{self.bundle / 'clam.json'} says [1, {self.meta.action.dim}]; re-export the bundle")
        log.info("onnxruntime %s: provider %s (available: %s), %d intra-op thread(s)", ort.__version__,
                 self.provider, ", ".join(available), so.intra_op_num_threads)

    def infer(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        for key, buf in self._feeds.items():
            buf[0] = obs[key]  # (1, *shape) <- (*shape); numpy checks the shape and casts
        out = self.session.run(self._outputs, self._feeds)[0]  # (1, A)
        return np.asarray(out[0], dtype=np.float32)

    def close(self) -> None:
        self.session = None


# ----------------------------------------------------------------------------- TensorRT


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def _import_cudart():
    """cuda-python's runtime API: `cuda.bindings.runtime` (cuda-python >= 12.6) or `cuda.cudart`."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        except ImportError as e:
            raise MissingDependency(f"cuda-python is not installed ({e}); the TensorRT backend needs it for "
                                    "device memory: pip install cuda-python") from e
    return cudart


def _check(result):
    """cuda-python calls return (err, *values); raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:  # cudaSuccess == 0
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else (tuple(values) or None)


def find_engine(bundle: Path, trt_version: str, gpu_name: str) -> Path:
    """The bundle's engine built for this GPU and TensorRT version (engines are not portable).
    Names, as clam-export --trt writes them: policy.<gpu>-trt<version>-<fp16|fp32>.engine (compared
    after lower-casing and turning every non-alphanumeric run into '-'); fp16 preferred."""
    engines = sorted(Path(bundle).glob("policy.*.engine"))
    if not engines:
        raise BundleError(f"{bundle}: no TensorRT engine (policy.<gpu>-trt<version>-<precision>.engine); "
                          "build one on this machine with clam-export BUNDLE --trt")
    want = f"{_slug(gpu_name)}-trt{_slug(trt_version)}-"
    matches = [p for p in engines if _slug(p.name[len("policy."):-len(".engine")]).startswith(want)]
    if not matches:
        raise BundleError(f"{bundle}: no engine for GPU '{gpu_name}' and TensorRT {trt_version} "
                          f"(have: {', '.join(p.name for p in engines)}); rebuild with clam-export BUNDLE --trt on this machine")
    matches.sort(key=lambda p: (not p.name.endswith("-fp16.engine"), p.name))
    return matches[0]


def check_engine_record(meta: BundleMeta, engine_path: Path) -> None:
    """clam-export --trt records each engine's parity check in clam.json parity["tensorrt"][name]; refuse an
    engine whose check failed or that was built from another policy.onnx, and warn about unrecorded ones."""
    rec = (meta.parity.get("tensorrt") or {}).get(engine_path.name)
    if rec is None:
        log.warning("%s has no parity record in clam.json (not built by clam-export --trt?); running it unchecked",
                    engine_path.name)
        return
    if not rec.get("passed", False):
        raise BundleError(f"{engine_path}: failed its parity check against the torch policy; rebuild with clam-export --trt")
    if rec.get("onnx_sha256") not in (None, meta.onnx_sha256):
        raise BundleError(f"{engine_path}: built from another policy.onnx; rebuild with clam-export BUNDLE --trt --rebuild")
    if rec.get("engine_sha256") and rec["engine_sha256"] != sha256_file(engine_path):
        raise BundleError(f"{engine_path}: does not match the engine recorded in clam.json; rebuild with clam-export --trt")
    if "max_abs_error" in rec:
        log.info("%s: parity vs torch max_abs_error %.2e (%s)", engine_path.name, rec["max_abs_error"], rec.get("precision", "?"))


class TrtBackend(Backend):
    """A TensorRT >= 10 engine: IO by tensor name, execute_async_v3 on a dedicated CUDA stream.

    Per infer(): host->device copies of the inputs, one enqueue, device->host copy of the action,
    stream sync. Host buffers are ordinary numpy arrays (pageable): at batch 1 the copies are a
    few hundred bytes to ~50 kB, where pinned memory buys nothing measurable.
    """

    def __init__(self, bundle: str | Path, *, meta: BundleMeta | None = None, engine: str | Path | None = None,
                 device: int = 0):
        trt = require("tensorrt", "trt", hint="install TensorRT >= 10 from NVIDIA (JetPack, or pip install tensorrt on x86 + CUDA)")
        cudart = _import_cudart()
        self._trt, self._cudart = trt, cudart
        self.bundle = Path(bundle)
        self.meta = meta or read_meta(self.bundle)
        _check(cudart.cudaSetDevice(device))
        props = _check(cudart.cudaGetDeviceProperties(device))
        gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        gpu = gpu.split("\x00", 1)[0]
        self.engine_path = Path(engine) if engine else find_engine(self.bundle, str(trt.__version__), gpu)
        check_engine_record(self.meta, self.engine_path)
        self._device_ptrs: list[int] = []
        self._stream = None
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise BundleError(f"{self.engine_path}: TensorRT {trt.__version__} cannot deserialise it on {gpu} "
                              "(built for another GPU or TensorRT version?); rebuild with clam-export --trt")
        self._context = self._engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate())
        self._inputs: dict[str, tuple[np.ndarray, int]] = {}  # name -> (host (1, *shape), device ptr)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        in_names = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if set(in_names) != set(self.meta.inputs) or "action" not in names:
            raise BundleError(f"{self.engine_path}: engine tensors {names} do not match clam.json inputs "
                              f"{self.meta.inputs} + 'action'")
        for name in in_names:  # input shapes first: the output shape depends on them (dynamic batch axis)
            shape = (1, *self.meta.observation.keys[name].shape)  # (1, *shape)
            if not self._context.set_input_shape(name, shape):
                raise BundleError(f"{self.engine_path}: engine rejects input '{name}' of shape {shape} "
                                  "(optimisation profile without batch 1?)")
            self._inputs[name] = self._alloc(name, shape)
        out_shape = tuple(int(d) for d in self._context.get_tensor_shape("action"))  # (1, A)
        self._out_host, self._out_ptr = self._alloc("action", out_shape)
        self.name = f"trt:{trt.__version__}"
        log.info("TensorRT %s on %s: engine %s", trt.__version__, gpu, self.engine_path.name)

    def _alloc(self, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
        dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name)))
        host = np.zeros(shape, dtype)
        ptr = int(_check(self._cudart.cudaMalloc(max(host.nbytes, 1))))
        self._device_ptrs.append(ptr)
        self._context.set_tensor_address(name, ptr)
        return host, ptr

    def _stream_handle(self) -> int:
        s = self._stream
        try:
            return int(s)
        except TypeError:
            return int(s.getPtr())

    def infer(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        cudart, stream = self._cudart, self._stream
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, (host, ptr) in self._inputs.items():
            host[0] = obs[name]
            _check(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, stream))
        if not self._context.execute_async_v3(self._stream_handle()):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.engine_path.name}")
        _check(cudart.cudaMemcpyAsync(self._out_host.ctypes.data, self._out_ptr, self._out_host.nbytes, d2h, stream))
        _check(cudart.cudaStreamSynchronize(stream))
        return np.asarray(self._out_host[0], dtype=np.float32).copy()

    def close(self) -> None:
        cudart = self._cudart
        for ptr in self._device_ptrs:
            cudart.cudaFree(ptr)
        self._device_ptrs = []
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = self._engine = self._runtime = None


# ----------------------------------------------------------------------------- factory


def make_backend(bundle: str | Path, kind: str = "ort", **opts) -> Backend:
    """"ort" (onnxruntime), "trt" (TensorRT; MissingDependency without it) or "auto" (TensorRT when
    it is installed and the bundle has an engine for this GPU, else onnxruntime with a warning)."""
    if kind == "ort":
        return OrtBackend(bundle, **opts)
    if kind == "trt":
        return TrtBackend(bundle, **opts)
    if kind == "auto":
        meta = opts.pop("meta", None) or read_meta(bundle)
        try:
            return TrtBackend(bundle, meta=meta)
        except (MissingDependency, BundleError, RuntimeError) as e:
            log.warning("TensorRT backend unavailable (%s); falling back to onnxruntime", e)
            return OrtBackend(bundle, meta=meta, **opts)
    raise UserError(f"unknown backend '{kind}' (one of: {', '.join(KINDS)})")
