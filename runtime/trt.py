"""TensorRT (>= 10) on the robot: the one engine runner and the one engine-name rule, shared by the
runtime's TrtBackend and by `clam-export --trt` (which checks a new engine's parity with the same
runner). numpy only at import; tensorrt and cuda-python are imported by the functions that need them.

    name = engine_name(gpu_name(), trt.__version__, fp16=True)   # policy.<gpu>-trt<version>-fp16.engine
    with TrtEngine(trt, path.read_bytes(), source=path) as engine:
        actions = engine.run({"state": batch})                    # (B, A) float32

Engine names: `policy.<gpu>-trt<version>-<fp16|fp32>.engine` and the timing cache
`timing.<gpu>-trt<version>.cache`, where <gpu> and <version> are lower-cased with every run of
characters other than [a-z0-9.] turned into '-' (sanitize): 'NVIDIA GeForce RTX 4090', '10.3.0'
-> policy.nvidia-geforce-rtx-4090-trt10.3.0-fp32.engine. An engine never serves another GPU,
TensorRT version or precision; find_engine looks for exactly these names.

Threads: the CUDA runtime's current device is per thread, and the control loop calls infer() on its
inference worker thread (runtime/inference.py), not the thread that built the engine. TrtEngine
therefore calls cudaSetDevice(device) the first time each thread uses it (the runtime API's primary
context is then shared by both threads); the engine, its execution context, stream and buffers are
created once and used by one thread at a time. Tested against tests/fake_trt.py (no GPU here).
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from pathlib import Path

import numpy as np

from clamkit.bundle import BundleMeta, sha256_file
from clamkit.errors import BundleError, MissingDependency, UserError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- CUDA runtime


def import_cudart():
    """cuda-python's runtime API: `cuda.bindings.runtime` (cuda-python >= 12.6) or `cuda.cudart`."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        except ImportError as e:
            raise MissingDependency(f"cuda-python is not installed ({e}); TensorRT engines need it for device "
                                    "memory: pip install cuda-python") from None
    return cudart


def check(result):
    """cuda-python calls return (err, *values); raise on an error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:  # cudaSuccess == 0
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else (tuple(values) or None)


def gpu_name(device: int = 0) -> str:
    """Name of CUDA device `device`: cuda-python first, nvidia-smi as the fallback."""
    try:
        cudart = import_cudart()
        name = check(cudart.cudaGetDeviceProperties(device)).name
        name = name.decode(errors="replace") if isinstance(name, (bytes, bytearray)) else str(name)
        return name.split("\x00", 1)[0]
    except (MissingDependency, RuntimeError) as e:
        log.debug("CUDA runtime did not name the GPU (%s); trying nvidia-smi", e)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", str(device)],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise UserError(f"cannot find a CUDA GPU for TensorRT (no cuda-python, nvidia-smi failed: {e})") from None
    return out.splitlines()[0].strip()


# ----------------------------------------------------------------------------- engine names


def sanitize(name: str) -> str:
    """'NVIDIA GeForce RTX 4090' -> 'nvidia-geforce-rtx-4090' (safe in a file name; dots kept: '10.3.0')."""
    return re.sub(r"[^a-z0-9.]+", "-", str(name).strip().lower()).strip("-.") or "unknown"


def engine_name(gpu: str, trt_version: str, fp16: bool) -> str:
    return f"policy.{sanitize(gpu)}-trt{sanitize(trt_version)}-{'fp16' if fp16 else 'fp32'}.engine"


def timing_cache_name(gpu: str, trt_version: str) -> str:
    return f"timing.{sanitize(gpu)}-trt{sanitize(trt_version)}.cache"


def find_engine(bundle: str | Path, trt_version: str, gpu: str) -> Path:
    """The bundle's engine for this GPU and TensorRT version (engines are not portable); fp16 preferred."""
    bundle = Path(bundle)
    engines = sorted(bundle.glob("policy.*.engine"))
    if not engines:
        raise BundleError(f"{bundle}: no TensorRT engine (policy.<gpu>-trt<version>-<precision>.engine); "
                          "build one on this machine with clam-export BUNDLE --trt")
    for fp16 in (True, False):
        path = bundle / engine_name(gpu, trt_version, fp16)
        if path.is_file():
            return path
    raise BundleError(f"{bundle}: no engine for GPU '{gpu}' and TensorRT {trt_version} (want "
                      f"{engine_name(gpu, trt_version, True)} or -fp32; have: {', '.join(p.name for p in engines)}); "
                      "rebuild with clam-export BUNDLE --trt on this machine")


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


# ----------------------------------------------------------------------------- the runner


def _handle(stream) -> int:
    """TensorRT wants the stream as an int; cuda-python hands out a cudaStream_t object."""
    try:
        return int(stream)
    except TypeError:
        return int(stream.getPtr())


class TrtEngine:
    """A deserialised engine run by tensor name with execute_async_v3 on its own CUDA stream.

    run(feeds) takes every input with its batch axis and returns the "action" output, (B, A) float32.
    Device buffers are allocated for the first shapes seen and reused while the shapes stay (the control
    loop: batch 1 every tick); a new shape reallocates. Host buffers are ordinary numpy arrays
    (pageable): at batch 1 the copies are a few hundred bytes to ~50 kB, where pinned memory buys nothing.
    """

    def __init__(self, trt, engine_bytes: bytes, *, source: str | Path = "engine", device: int = 0):
        self.trt, self.cudart, self.source, self.device = trt, import_cudart(), str(source), int(device)
        self._threads: set[int] = set()
        self._use_device()
        self._ptrs: dict[str, tuple[int, int]] = {}  # tensor -> (device ptr, bytes)
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._stream = None
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise BundleError(f"{self.source}: TensorRT {trt.__version__} cannot deserialise it (built for another GPU "
                              "or TensorRT version?); rebuild with clam-export --trt")
        self.context = self.engine.create_execution_context()
        self._stream = check(self.cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.names = names

    def _use_device(self) -> None:
        """cudaSetDevice on each new calling thread (the current device is per thread)."""
        me = threading.get_ident()
        if me not in self._threads:
            check(self.cudart.cudaSetDevice(self.device))
            self._threads.add(me)

    def dtype(self, name: str) -> np.dtype:
        return np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))

    def _bind(self, name: str, nbytes: int) -> int:
        ptr, size = self._ptrs.get(name, (0, -1))
        if size < nbytes:
            if ptr:
                self.cudart.cudaFree(ptr)
            ptr = int(check(self.cudart.cudaMalloc(max(nbytes, 1))))
            self._ptrs[name] = (ptr, nbytes)
            self.context.set_tensor_address(name, ptr)
        return ptr

    def set_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Input shapes (with the batch axis); False from TensorRT means the profile does not cover them."""
        for name in self.inputs:
            shape = tuple(int(d) for d in shapes[name])
            if self._shapes.get(name) != shape:
                if self.context.set_input_shape(name, shape) is False:
                    raise BundleError(f"{self.source}: the engine rejects input '{name}' of shape {list(shape)} "
                                      "(outside its optimisation profile)")
                self._shapes[name] = shape

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self._use_device()
        cu, stream = self.cudart, self._stream
        h2d, d2h = cu.cudaMemcpyKind.cudaMemcpyHostToDevice, cu.cudaMemcpyKind.cudaMemcpyDeviceToHost
        host = {n: np.ascontiguousarray(feeds[n], dtype=self.dtype(n)) for n in self.inputs}
        self.set_shapes({n: a.shape for n, a in host.items()})
        for name, a in host.items():
            check(cu.cudaMemcpyAsync(self._bind(name, a.nbytes), a.ctypes.data, a.nbytes, h2d, stream))
        out = np.empty(tuple(int(d) for d in self.context.get_tensor_shape("action")), self.dtype("action"))  # (B, A)
        out_ptr = self._bind("action", out.nbytes)
        if not self.context.execute_async_v3(_handle(stream)):
            raise RuntimeError(f"{self.source}: TensorRT execute_async_v3 failed")
        check(cu.cudaMemcpyAsync(out.ctypes.data, out_ptr, out.nbytes, d2h, stream))
        check(cu.cudaStreamSynchronize(stream))
        return out.astype(np.float32, copy=False)

    __call__ = run  # the parity check calls a runner with the feeds

    def close(self) -> None:
        """Free device memory and the stream; the engine is unusable afterwards."""
        for ptr, _ in self._ptrs.values():
            self.cudart.cudaFree(ptr)
        self._ptrs = {}
        if self._stream is not None:
            self.cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self.context = self.engine = self.runtime = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
