"""TensorRT engine from a bundle's policy.onnx (TensorRT >= 10 Python API). torch-free.

Runs on the robot computer with only the bundle: `clam-export BUNDLE --trt [--fp16]`.

    parse      trt.OnnxParser over policy.onnx; a parser error names the failing node
    configure  workspace pool limit, FP16 flag only with --fp16 (TF32 cleared for fp32, so
               fp32 really is fp32), one optimisation profile: batch axis of every input
               min 1, opt 1 (the control loop runs batch 1), max --batch-max
    cache      timing cache `timing.<gpu>-trt<ver>.cache` in the bundle, loaded and saved;
               engine `policy.<gpu>-trt<ver>-<fp16|fp32>.engine`, so an engine is never
               served to another GPU, TensorRT version or precision; an engine whose key,
               policy.onnx hash and batch range match the record in clam.json is reused
    parity     the engine runs the bundle's parity.npz (recorded observations and the torch
               policy's actions for them); errors go to clam.json parity["tensorrt"][engine]

tensorrt is imported here lazily. The engine-name rule, the GPU name and the runner that checks the
engine's parity are clamkit.runtime.trt's (the same code the robot's TrtBackend runs; torch-free).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from clamkit.bundle import ONNX_NAME, BundleMeta, read_meta, sha256_file, write_meta
from clamkit.errors import MissingDependency, UserError
from clamkit.export.parity import (
    PARITY_NAME,
    TRT_FP16_TOLERANCE,
    TRT_FP32_TOLERANCE,
    ParityError,
    ParitySet,
    check_backend,
    describe_failure,
    log_report,
    summarize,
)
from clamkit.fileio import write_bytes_atomic
from clamkit.runtime.trt import TrtEngine, engine_name, gpu_name, timing_cache_name

log = logging.getLogger(__name__)


class TrtBuildError(UserError):
    """TensorRT could not parse the graph or build the engine."""


# ----------------------------------------------------------------------------- lazy imports


def import_tensorrt(bundle: Path):
    """`tensorrt` (>= 10), or MissingDependency saying what to install and how to build on the robot."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependency(
            f"tensorrt is not installed here, so no engine was built ({bundle} holds a valid ONNX bundle); "
            f"on the robot install TensorRT >= 10 and cuda-python (pip install 'clamkit[trt]' cuda-python, or JetPack's "
            f"python3-libnvinfer) and build the engine there from the bundle alone: clam-export {bundle} --trt") from None
    major = int(str(getattr(trt, "__version__", "0")).split(".")[0] or 0)
    if major < 10:
        raise MissingDependency(f"tensorrt {trt.__version__} is too old; clamkit needs TensorRT >= 10 (pip install 'clamkit[trt]')")
    log.info("TensorRT %s found", trt.__version__)
    return trt


# ----------------------------------------------------------------------------- build


def _parser_errors(parser, onnx_path: Path) -> str:
    names = None
    parts = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        idx = e.node()
        name = e.node_name() if hasattr(e, "node_name") else ""
        op = e.node_operator() if hasattr(e, "node_operator") else ""
        if not name and idx >= 0:  # older parsers give only the index: look the name up if onnx is here
            if names is None:
                try:
                    import onnx

                    names = [(n.name, n.op_type) for n in onnx.load(str(onnx_path), load_external_data=False).graph.node]
                except Exception:
                    names = []
            if idx < len(names):
                name, op = names[idx][0], op or names[idx][1]
        where = f"node {idx} '{name}'" + (f" ({op})" if op else "") if idx >= 0 else "graph"
        parts.append(f"{where}: {e.desc()}")
    return "; ".join(parts) or "no error detail from the parser"


def build_engine(trt, onnx_path: Path, engine_path: Path, cache_path: Path, batch_max: int, fp16: bool,
                 workspace_mb: int) -> dict:
    """Parse, configure, build and serialise; returns facts for the report. Raises TrtBuildError."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise TrtBuildError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {_parser_errors(parser, onnx_path)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if fp16:
        if not getattr(builder, "platform_has_fast_fp16", True):
            log.warning("this GPU has no fast fp16; building with the FP16 flag anyway")
        config.set_flag(trt.BuilderFlag.FP16)
        log.info("precision: fp16 (FP16 builder flag set)")
    else:
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 is on by default on Ampere+; fp32 parity needs real fp32
        log.info("precision: fp32 (TF32 cleared)")

    profile = builder.create_optimization_profile()
    shapes = {}
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        rest = tuple(int(d) for d in tuple(inp.shape)[1:])
        if any(d < 0 for d in rest):
            raise TrtBuildError(f"input '{inp.name}' has dynamic non-batch dims {list(inp.shape)}; only the batch axis may vary")
        lo, opt, hi = (1, *rest), (1, *rest), (int(batch_max), *rest)
        profile.set_shape(inp.name, lo, opt, hi)
        shapes[inp.name] = {"min": list(lo), "opt": list(opt), "max": list(hi)}
    config.add_optimization_profile(profile)

    blob = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    log.info("timing cache %s (%s)", cache_path.name, f"{len(blob)} bytes loaded" if blob else "new")

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TrtBuildError(f"TensorRT {trt.__version__} could not build an engine from {onnx_path.name} (see the TensorRT log above)")
    build_s = time.perf_counter() - t0
    write_bytes_atomic(engine_path, serialized)
    write_bytes_atomic(cache_path, config.get_timing_cache().serialize())
    log.info("built %s in %.1f s", engine_path.name, build_s)
    return {"build_s": round(build_s, 3), "profile": shapes}


# ----------------------------------------------------------------------------- bundle


def _rows(ps: ParitySet, n: int) -> ParitySet:
    """The reference set at batch n: its first n rows, repeated when it has fewer (torch's answer per row is the same)."""
    take = np.arange(n) % ps.batch
    return ParitySet(inputs={k: v[take] for k, v in ps.inputs.items()}, action=ps.action[take],
                     action_b1=ps.action_b1[: min(n, len(ps.action_b1))], source=ps.source)


def build_for_bundle(bundle: str | Path, batch_max: int = 16, fp16: bool = False, workspace_mb: int = 1024,
                     rebuild: bool = False) -> dict:
    """Build (or reuse) this GPU's engine for a valid bundle, check its parity, record it in clam.json."""
    bundle = Path(bundle)
    trt = import_tensorrt(bundle)
    meta: BundleMeta = read_meta(bundle)  # valid, and policy.onnx is the file that passed the ONNX check
    gpu, version = gpu_name(), str(trt.__version__)
    name = engine_name(gpu, version, fp16)
    engine_path, cache_path = bundle / name, bundle / timing_cache_name(gpu, version)
    records = dict(meta.parity.get("tensorrt") or {})
    old = records.get(name) or {}

    want = {"onnx_sha256": meta.onnx_sha256, "batch_max": int(batch_max)}
    reuse = (not rebuild and engine_path.is_file() and all(old.get(k) == v for k, v in want.items())
             and old.get("engine_sha256") == sha256_file(engine_path))
    # a new engine is built under a hidden name and moved into place only after its parity passed,
    # so a killed or failed build never leaves an unchecked engine a runtime could pick up
    built = engine_path if reuse else bundle / f".{name}.tmp"
    try:
        if reuse:
            log.info("reusing cached engine %s (same GPU, TensorRT, precision, policy.onnx and batch range)", name)
            info = {k: old[k] for k in ("build_s", "profile", "workspace_mb") if k in old}
        else:
            if engine_path.is_file():
                why = "--rebuild" if rebuild else "it was built from another policy.onnx or batch range, or is unrecorded"
                log.info("rebuilding %s (%s)", name, why)
            info = build_engine(trt, bundle / ONNX_NAME, built, cache_path, batch_max, fp16, workspace_mb)
            info["workspace_mb"] = int(workspace_mb)

        ps = _rows(ParitySet.load(bundle / PARITY_NAME), int(batch_max))
        tol = TRT_FP16_TOLERANCE if fp16 else TRT_FP32_TOLERANCE
        with TrtEngine(trt, built.read_bytes(), source=built) as runner:
            checks = check_backend("tensorrt", runner, [ps], tol)
        report = summarize(checks, tol, engine=name, gpu=gpu, tensorrt=version,
                           precision="fp16" if fp16 else "fp32", reused=reuse, engine_sha256=sha256_file(built),
                           timing_cache=cache_path.name, **want, **info)
        log_report("tensorrt", report)
        records[name] = report
        meta.parity["tensorrt"] = records
        if not report["passed"]:
            engine_path.unlink(missing_ok=True)  # an older engine under this name is stale now too
            write_meta(bundle, meta)
            raise ParityError(describe_failure(f"TensorRT {name}", report) + "; engine deleted")
        write_meta(bundle, meta)  # record first: an engine file without its record is never the newer one
        if not reuse:
            os.replace(built, engine_path)
    finally:
        if not reuse:
            built.unlink(missing_ok=True)
    return report

