"""The one fake `tensorrt` (>= 10 Python API) and cuda-python runtime, torch-free, shared by the engine
builder's tests (tests/export) and TrtBackend's (tests/runtime).

The fake `tensorrt` records every builder call in `calls`. A serialised engine carries the ONNX graph
the builder was given (a JSON header line, then the ONNX bytes), and running it runs that graph in
onnxruntime, reading and writing the fake CUDA runtime's device memory: an engine built by
clamkit.export.trt computes the bundle's policy when TrtBackend runs it, and the engine-side plumbing
(shapes, dtypes, copies, stream handles, the per-thread current device) is exercised too.
Importable as `fake_trt` (pytest's pythonpath has tests/); the `fake_trt` fixture is in tests/conftest.py.
Subprocess tests load it by path to check that the bundle path imports no torch.
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import threading
import types

import numpy as np


# ----------------------------------------------------------------------------- fake CUDA runtime


class _Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2


class _Kind(enum.IntEnum):
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


class _Stream:
    """cuda-python's cudaStream_t: an object, int() gives the handle TensorRT wants."""

    def __init__(self, h):
        self.h = h

    def __int__(self):
        return self.h


def make_fake_cudart(gpu="NVIDIA GeForce RTX 4090"):
    """cuda-python's runtime API surface clamkit uses; device memory is a dict of bytearrays, each tagged
    with the device that was current (per thread, default 0, as in CUDA) when it was allocated.
    `calls` records (name, ...) of every call."""
    cu = types.ModuleType("cuda.bindings.runtime")
    cu.cudaError_t, cu.cudaMemcpyKind = _Err, _Kind
    cu.memory, cu.owner, cu.next_ptr, cu.gpu, cu.calls = {}, {}, [0x1000], gpu, []
    local = threading.local()
    cu.current_device = lambda: getattr(local, "device", 0)

    def cudaSetDevice(dev):
        cu.calls.append(("cudaSetDevice", dev, threading.get_ident()))
        local.device = dev
        return (_Err.cudaSuccess,)

    def cudaMalloc(n):
        p = cu.next_ptr[0]
        cu.next_ptr[0] += n + 256
        cu.memory[p], cu.owner[p] = bytearray(n), cu.current_device()
        cu.calls.append(("cudaMalloc", n))
        return _Err.cudaSuccess, p

    def cudaMemcpyAsync(dst, src, n, kind, stream):
        assert isinstance(stream, _Stream), "cudaMemcpyAsync takes the cudaStream_t object"
        if kind == _Kind.cudaMemcpyHostToDevice:
            cu.memory[dst][:n] = ctypes.string_at(src, n)
        else:
            buf = (ctypes.c_char * n).from_buffer(cu.memory[src])
            ctypes.memmove(dst, buf, n)
        cu.calls.append(("cudaMemcpyAsync", int(kind), n))
        return (_Err.cudaSuccess,)

    def cudaFree(p):
        cu.calls.append(("cudaFree", p))
        cu.memory.pop(p, None)
        return (_Err.cudaSuccess,)

    def record(name, value):
        def call(*args):
            cu.calls.append((name,))
            return value
        return call

    cu.cudaSetDevice, cu.cudaMalloc, cu.cudaMemcpyAsync, cu.cudaFree = cudaSetDevice, cudaMalloc, cudaMemcpyAsync, cudaFree
    cu.cudaStreamCreate = record("cudaStreamCreate", (_Err.cudaSuccess, _Stream(7)))
    cu.cudaStreamSynchronize = record("cudaStreamSynchronize", (_Err.cudaSuccess,))
    cu.cudaStreamDestroy = record("cudaStreamDestroy", (_Err.cudaSuccess,))
    cu.cudaGetDeviceProperties = lambda dev: (_Err.cudaSuccess, types.SimpleNamespace(name=cu.gpu.encode()))
    return cu


# ----------------------------------------------------------------------------- fake TensorRT


class FakeTRT(types.ModuleType):
    """Records builder calls in `calls` (list of (name, args)); knobs: fail_node, output_bias, fp16_round."""

    def __init__(self, version="10.3.0", cudart=None):
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple] = []
        self.fail_node: int | None = None  # parser reports an error at this node index
        self.output_bias = 0.0  # engines add this to every action (to fail parity)
        self.cudart = cudart
        fake = self

        class Logger:
            WARNING, INFO, ERROR = 2, 3, 1

            def __init__(self, level=2):
                fake.calls.append(("Logger", level))

        class DataType(enum.Enum):
            FLOAT, HALF, UINT8, INT32 = range(4)

        self.Logger, self.DataType = Logger, DataType
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
        self.BuilderFlag = types.SimpleNamespace(FP16="FP16", TF32="TF32", INT8="INT8")
        self.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
        self.nptype = lambda dt: {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.UINT8: np.uint8,
                                  DataType.INT32: np.int32}[dt]
        to_dt = {"float32": DataType.FLOAT, "uint8": DataType.UINT8, "float16": DataType.HALF}

        class Tensor:
            def __init__(self, name, shape, dtype):
                self.name, self.shape, self.dtype = name, shape, dtype

        class Network:
            def __init__(self):
                self.inputs, self.onnx_path = [], None

            @property
            def num_inputs(self):
                return len(self.inputs)

            def get_input(self, i):
                return self.inputs[i]

        class ParserError:
            def __init__(self, idx, name, op, desc):
                self._v = (idx, name, op, desc)

            def node(self):
                return self._v[0]

            def node_name(self):
                return self._v[1]

            def node_operator(self):
                return self._v[2]

            def desc(self):
                return self._v[3]

        class OnnxParser:
            def __init__(self, network, logger):
                self.network, self.errors = network, []

            @property
            def num_errors(self):
                return len(self.errors)

            def get_error(self, i):
                return self.errors[i]

            def parse_from_file(self, path):
                import onnx
                import onnxruntime as ort

                fake.calls.append(("parse_from_file", path))
                model = onnx.load(path)
                if fake.fail_node is not None:
                    n = model.graph.node[fake.fail_node]
                    self.errors.append(ParserError(fake.fail_node, n.name, n.op_type, f"unsupported operator {n.op_type}"))
                    return False
                sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                ort_dt = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}
                for i in sess.get_inputs():
                    shape = tuple(-1 if not isinstance(d, int) else d for d in i.shape)
                    self.network.inputs.append(Tensor(i.name, shape, to_dt[ort_dt[i.type]]))
                self.network.onnx_path = path
                return True

        class Profile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, lo, opt, hi):
                fake.calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))
                self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

        class TimingCache:
            def __init__(self, blob):
                self.blob = bytes(blob)

            def serialize(self):
                return self.blob + b"+timing"

        class Config:
            def __init__(self):
                self.flags, self.profiles, self.cache = set(), [], None

            def set_memory_pool_limit(self, pool, size):
                fake.calls.append(("set_memory_pool_limit", pool, size))

            def set_flag(self, flag):
                fake.calls.append(("set_flag", flag))
                self.flags.add(flag)

            def clear_flag(self, flag):
                fake.calls.append(("clear_flag", flag))
                self.flags.discard(flag)

            def add_optimization_profile(self, p):
                fake.calls.append(("add_optimization_profile", dict(p.shapes)))
                self.profiles.append(p)

            def create_timing_cache(self, blob):
                fake.calls.append(("create_timing_cache", bytes(blob)))
                return TimingCache(blob)

            def set_timing_cache(self, cache, ignore_mismatch):
                self.cache = cache

            def get_timing_cache(self):
                return self.cache

        class Builder:
            platform_has_fast_fp16 = True

            def __init__(self, logger):
                fake.calls.append(("Builder",))

            def create_network(self, flags=0):
                fake.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake.calls.append(("build_serialized_network", sorted(config.flags)))
                header = {"fp16": "FP16" in config.flags, "profile": {k: v[2][0] for k, v in config.profiles[0].shapes.items()}}
                with open(network.onnx_path, "rb") as f:  # the engine carries the graph it was built from
                    return json.dumps(header).encode() + b"\n" + f.read()

        class Context:
            def __init__(self, engine):
                self.engine, self.shapes, self.addr = engine, {}, {}

            def set_input_shape(self, name, shape):
                fake.calls.append(("set_input_shape", name, tuple(shape)))
                if not 1 <= shape[0] <= engine_max(self.engine, name):
                    return False  # outside the optimisation profile
                self.shapes[name] = tuple(shape)
                return True

            def set_tensor_address(self, name, ptr):
                fake.calls.append(("set_tensor_address", name))
                self.addr[name] = ptr

            def get_tensor_shape(self, name):
                b = next(iter(self.shapes.values()))[0]
                return (b, self.engine.sess.get_outputs()[0].shape[1])

            def execute_async_v3(self, stream):
                assert type(stream) is int, "TensorRT's execute_async_v3 takes the stream handle as an int"
                fake.calls.append(("execute_async_v3", stream))
                mem, cu = fake.cudart.memory, fake.cudart
                if any(cu.owner[p] != cu.current_device() for p in self.addr.values()):
                    return False  # buffers of another device: this thread never made the engine's device current
                feeds = {}
                for name, shape in self.shapes.items():
                    dt = fake.nptype(self.engine.get_tensor_dtype(name))
                    n = int(np.prod(shape)) * np.dtype(dt).itemsize
                    feeds[name] = np.frombuffer(bytes(mem[self.addr[name]][:n]), dtype=dt).reshape(shape)
                out = self.engine.sess.run(["action"], feeds)[0]
                if self.engine.spec["fp16"]:
                    out = out.astype(np.float16).astype(np.float32)
                out = (out + fake.output_bias).astype(np.float32)
                mem[self.addr["action"]][: out.nbytes] = out.tobytes()
                return True

        def engine_max(engine, name):
            return engine.spec["profile"][name]

        class Engine:
            def __init__(self, blob):
                import onnxruntime as ort

                header, _, graph = bytes(blob).partition(b"\n")
                self.spec = json.loads(header)
                self.sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
                self.names = [i.name for i in self.sess.get_inputs()] + ["action"]
                self.dtypes = {i.name: to_dt[{"tensor(float)": "float32", "tensor(uint8)": "uint8"}[i.type]] for i in self.sess.get_inputs()}
                self.dtypes["action"] = DataType.FLOAT

            num_io_tensors = property(lambda self: len(self.names))

            def get_tensor_name(self, i):
                return self.names[i]

            def get_tensor_mode(self, name):
                return "OUTPUT" if name == "action" else "INPUT"

            def get_tensor_dtype(self, name):
                return self.dtypes[name]

            def create_execution_context(self):
                return Context(self)

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, blob):
                fake.calls.append(("deserialize_cuda_engine",))
                try:
                    return Engine(blob)
                except Exception:  # noqa: BLE001 - TensorRT logs the error and returns None
                    return None

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime

    def called(self, name):
        return [c for c in self.calls if c[0] == name]


def install(trt: FakeTRT, modules: dict | None = None) -> dict:
    """Put the fake tensorrt and cuda.bindings.runtime into `modules` (default sys.modules)."""
    modules = sys.modules if modules is None else modules
    cuda_pkg, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda_pkg.bindings, bindings.runtime = bindings, trt.cudart
    entries = {"tensorrt": trt, "cuda": cuda_pkg, "cuda.bindings": bindings, "cuda.bindings.runtime": trt.cudart}
    modules.update(entries)
    return entries
