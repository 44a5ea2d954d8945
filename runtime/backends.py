"""Inference backends: one raw observation (batch 1) in, one action (robot units) out.

    backend = make_backend("bundles/reach", kind="auto")   # TensorRT when it can, else onnxruntime
    action = backend.infer({"state": obs})                 # (A,) float32
    backend.close()

Both backends run the bundle's single graph (DESIGN §5): preprocessing and (de)normalisation live
inside it, so a backend only adds the batch axis, copies into pre-allocated buffers and runs.

- OrtBackend: onnxruntime; CUDA execution provider first when the installed onnxruntime has it,
  else CPU. Session options are tuned for batch-1 latency (all graph optimisations, sequential
  execution, few intra-op threads: spreading a tiny MLP over many cores costs more in
  synchronisation than it saves; no spinning between runs, which would starve the loop's other threads).
- TrtBackend: a TensorRT >= 10 engine (`policy.<gpu>-trt<version>-<precision>.engine`, built on the
  robot computer by `clam-export --trt`, its parity record in clam.json checked), run by
  runtime/trt.py's TrtEngine (the runner clam-export's parity check uses too): by tensor name with
  execute_async_v3 on a CUDA stream, device memory from cuda-python (`pip install cuda-python`),
  imported lazily like tensorrt. TensorRT cannot be installed on the development machines
  (DESIGN §2): this class is exercised against tests/fake_trt.py, whose engines run the ONNX graph
  they were built from, and has not yet run on a real GPU.

numpy + onnxruntime only; tensorrt and cuda-python are imported inside the class that needs them.
"""

from __future__ import annotations

import abc
import logging
import os
from pathlib import Path

import numpy as np

from clamkit.bundle import ONNX_NAME, BundleMeta, read_meta
from clamkit.errors import BundleError, MissingDependency, UserError, require
import clamkit.runtime.trt as rt

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


def default_threads() -> int:
    """onnxruntime's intra-op threads when none are asked for: 2, but always one core fewer than the computer has,
    which the camera reader, the robot's driver and the loop itself need. On 2 cores, measured with the pixel
    bundle fed 640x480 frames (benchmarks/results/latency-frames.json), 1 thread beat 2 at p50 and at p99 (2.5 vs
    5.9 ms p99): the second thread only contends with them."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


class OrtBackend(Backend):
    """onnxruntime InferenceSession over BUNDLE/policy.onnx.

    device: "auto" (CUDA EP when available, else CPU), "cpu" or "cuda".
    threads: intra-op threads (default: default_threads(), 2 leaving a core free); 1 is best for small MLPs.
    """

    def __init__(self, bundle: str | Path, *, meta: BundleMeta | None = None, device: str = "auto",
                 threads: int | None = None, warmup: int = 3):
        ort = require("onnxruntime", "runtime")
        self.bundle = Path(bundle)
        self.meta = meta or read_meta(self.bundle)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = int(threads or default_threads())
        so.inter_op_num_threads = 1
        # ORT's intra-op workers otherwise spin for a while after each run, waiting for more work: measured
        # here, ~32 ms of CPU after every call of the pixel graph, which at 30 Hz is the whole gap between ticks,
        # taken from the camera reader, the robot's driver and the physics on a small robot computer.
        so.add_session_config_entry("session.force_spinning_stop", "1")
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


class TrtBackend(Backend):
    """A TensorRT >= 10 engine of the bundle, found by this GPU's and TensorRT's name (runtime/trt.py: the
    one name rule and the one runner, shared with clam-export --trt), its parity record checked.

    Per infer(): host->device copies of the inputs, one execute_async_v3 on the engine's CUDA stream,
    device->host copy of the action, stream sync. The control loop calls infer() on its inference worker
    thread; the engine makes its CUDA device current on each new thread (see runtime/trt.py).
    """

    def __init__(self, bundle: str | Path, *, meta: BundleMeta | None = None, engine: str | Path | None = None,
                 device: int = 0):
        trt = require("tensorrt", "trt", hint="install TensorRT >= 10 from NVIDIA (JetPack, or pip install tensorrt on x86 + CUDA)")
        rt.import_cudart()  # MissingDependency before anything else when cuda-python is absent
        self.bundle = Path(bundle)
        self.meta = meta or read_meta(self.bundle)
        gpu = rt.gpu_name(device)
        self.engine_path = Path(engine) if engine else rt.find_engine(self.bundle, str(trt.__version__), gpu)
        rt.check_engine_record(self.meta, self.engine_path)
        self._engine = rt.TrtEngine(trt, self.engine_path.read_bytes(), source=self.engine_path, device=device)
        names = self._engine.names
        if set(self._engine.inputs) != set(self.meta.inputs) or "action" not in names:
            self.close()
            raise BundleError(f"{self.engine_path}: engine tensors {names} do not match clam.json inputs "
                              f"{self.meta.inputs} + 'action'")
        self._feeds = {k: np.zeros((1, *self.meta.observation.keys[k].shape), self._engine.dtype(k))  # (1, *shape)
                       for k in self.meta.inputs}
        self._engine.set_shapes({k: v.shape for k, v in self._feeds.items()})  # an engine without batch 1 fails here
        self.name = f"trt:{trt.__version__}"
        log.info("TensorRT %s on %s: engine %s", trt.__version__, gpu, self.engine_path.name)

    def infer(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        for key, buf in self._feeds.items():
            buf[0] = obs[key]  # (1, *shape) <- (*shape)
        return np.array(self._engine.run(self._feeds)[0], dtype=np.float32)  # (A,), a copy

    def close(self) -> None:
        if getattr(self, "_engine", None) is not None:
            self._engine.close()
            self._engine = None


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
        except (UserError, RuntimeError) as e:  # MissingDependency, BundleError, no GPU, a CUDA error
            log.warning("TensorRT backend unavailable (%s); falling back to onnxruntime", e)
            return OrtBackend(bundle, meta=meta, **opts)
    raise UserError(f"unknown backend '{kind}' (one of: {', '.join(KINDS)})")
