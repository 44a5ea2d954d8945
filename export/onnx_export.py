"""torch -> ONNX: one graph from raw observations to actions, with a dynamic batch axis.

Two exporters, both in torch.onnx.export:
    dynamo  (dynamo=True)   torch.export-based; torch's default since 2.9 and the maintained path.
                            ~3-4 s on 2 CPU cores for a 1024x2 MLP (mostly fixed tracing cost).
    legacy  (dynamo=False)  TorchScript-based; deprecated by torch, ~0.2 s, handy fallback.
"auto" (the default) tries dynamo and falls back to legacy when dynamo cannot export the
policy, and says which one it used. Parity decides validity either way.

After export the graph is simplified with onnxscript's optimizer (constant folding, dead
code, function inlining), shape-inferred and checked by onnx.checker, and parity-checked
again; if simplification ever broke parity the unsimplified graph is kept (and logged).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from clamkit.errors import UserError
from clamkit.export import OPSET
from clamkit.export.parity import ParitySet

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "legacy")


class ExportFailed(UserError):
    """torch.onnx.export could not turn the policy into a graph."""


# ----------------------------------------------------------------------------- torch side


@torch.no_grad()
def torch_actions(policy: torch.nn.Module, names: list[str], feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The torch policy on raw observations (numpy in, numpy out), in eval mode."""
    out = policy(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
    return out.detach().float().cpu().numpy()


def tile_rows(x: np.ndarray, n: int) -> np.ndarray:
    """First n rows of x, repeating x when it has fewer."""
    reps = -(-n // len(x))
    return np.concatenate([x] * reps, 0)[:n] if reps > 1 else x[:n]


def random_observations(samples: dict[str, np.ndarray], n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Off-distribution inputs of the right dtype: uniform uint8 frames, states around the recorded ones."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in samples.items():
        shape = (n, *v.shape[1:])
        if v.dtype == np.uint8:
            out[k] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        elif np.issubdtype(v.dtype, np.floating):
            mu, sd = v.mean(0), v.std(0) + 1e-3 * (1.0 + np.abs(v.mean(0)))
            out[k] = (mu + 2.0 * sd * rng.standard_normal(shape)).astype(v.dtype)
        else:
            out[k] = tile_rows(v, n)
    return out


def parity_sets(policy: torch.nn.Module, names: list[str], samples: dict[str, np.ndarray], batch: int,
                n_single: int = 8) -> list[ParitySet]:
    """Reference actions from torch: recorded observations (tiled to `batch`) and a random set."""
    sets = []
    n_recorded = len(samples[names[0]])
    for source, feeds in (("recorded", {k: tile_rows(samples[k], batch) for k in names}),
                          ("random", random_observations({k: samples[k] for k in names}, batch))):
        k = min(n_single, batch, n_recorded if source == "recorded" else batch)
        b1 = np.concatenate([torch_actions(policy, names, {n: v[i : i + 1] for n, v in feeds.items()}) for i in range(k)], 0)
        sets.append(ParitySet(inputs=feeds, action=torch_actions(policy, names, feeds), action_b1=b1, source=source))
    return sets


# ----------------------------------------------------------------------------- export


@contextlib.contextmanager
def quiet_onnx_logs():
    """onnxscript/onnx_ir log every pass at INFO and torch.onnx warns about absent torchvision; --debug shows them."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch", "torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    if not log.isEnabledFor(logging.DEBUG):
        for lg in loggers:
            lg.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _export_dynamo(policy, args, names, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1)
    # positional dynamic_shapes: forward's parameter names need not be the observation keys
    # dynamo prints progress to stdout and, on failure, graph dumps to stderr; keep the CLI's
    # output ours and put them in the debug log
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(policy, args, str(path), dynamo=True, input_names=names, output_names=["action"],
                              dynamic_shapes=tuple({0: batch} for _ in names), opset_version=opset,
                              external_data=False, optimize=True)
    finally:
        log.debug("dynamo exporter said: %s %s", out.getvalue().strip(), err.getvalue().strip())


def _export_legacy(policy, args, names, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its own DeprecationWarning, TracerWarnings on shape arithmetic
        torch.onnx.export(policy, args, str(path), dynamo=False, input_names=names, output_names=["action"],
                          dynamic_axes={n: {0: "batch"} for n in [*names, "action"]}, opset_version=opset,
                          do_constant_folding=True)


def _root_cause(e: BaseException) -> str:
    """'Type: first line' of the innermost cause (torch wraps the useful error in TorchExportError)."""
    while e.__cause__ is not None:
        e = e.__cause__
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:400]


def export_onnx(policy: torch.nn.Module, names: list[str], example: dict[str, np.ndarray], path: Path,
                exporter: str = "auto", opset: int = OPSET) -> str:
    """Write `policy` as ONNX at `path`; returns the exporter actually used ("dynamo" or "legacy")."""
    if exporter not in EXPORTERS:
        raise UserError(f"--exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    # batch 2: torch.export specialises sizes 0 and 1, so a batch-1 example would freeze the axis
    args = tuple(torch.from_numpy(np.ascontiguousarray(tile_rows(example[n], 2))) for n in names)
    order = ["dynamo", "legacy"] if exporter == "auto" else [exporter]
    errors = []
    for name in order:
        t0 = time.perf_counter()
        try:
            with quiet_onnx_logs():
                (_export_dynamo if name == "dynamo" else _export_legacy)(policy, args, names, path, opset)
        except Exception as e:  # exporters raise many types; the message is what the user needs
            errors.append(f"{name}: {_root_cause(e)}")
            log.warning("%s exporter failed (%s)%s", name, errors[-1], "; trying legacy" if name != order[-1] else "")
            log.debug("%s exporter traceback", name, exc_info=True)
            continue
        log.info("exported with the %s exporter, opset %d, in %.2f s", name, opset, time.perf_counter() - t0)
        return name
    raise ExportFailed("torch.onnx.export failed: " + " | ".join(errors) + " (run with --debug for the traceback)")


def annotate(path: Path, props: dict[str, str]) -> None:
    """Stamp clamkit metadata into the ONNX file, so the graph describes itself even out of its bundle."""
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        p = existing.get(k) or model.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.save(model, str(path))


# Ops that only move or select elements: computing them on float instead of uint8 is exact.
# For these, input 0 is the data; the other inputs are shapes/indices/axes (int64).
_DATA_MOVEMENT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Gather", "Expand"}
_SHAPE_ONLY = {"Shape", "Size"}  # read only the shape
_FLOATS = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def cast_uint8_inputs_first(model) -> list[str]:
    """Move the uint8 -> float Cast of each uint8 input to the front of the graph.

    TensorRT takes a uint8 network input only into a Cast/Identity ("use the IdentityLayer to
    convert uint8 network-level inputs to float32/float16 prior to use with other TensorRT
    layers"), but a preprocessing that reshapes or permutes the frame before `.float()` exports
    as uint8 Reshape/Transpose -> Cast. When everything between the input and its float Casts
    is data movement, casting first is exact; the old Casts become float->float no-ops that the
    optimizer drops. Returns the inputs rewritten; logs a warning when a path is not safe to move.
    """
    import onnx

    g = model.graph
    consumers: dict[str, list] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    rewritten = []
    for inp in g.input:
        if inp.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
            continue
        direct = consumers.get(inp.name, [])
        if all(n.op_type == "Cast" for n, _ in direct):
            continue  # already TensorRT-friendly
        path, frontier, ok = set(), [inp.name], True
        while frontier and ok:
            t = frontier.pop()
            for node, idx in consumers.get(t, []):
                if node.op_type == "Cast" and next(a.i for a in node.attribute if a.name == "to") in _FLOATS:
                    continue
                if node.op_type in _SHAPE_ONLY:
                    continue
                if node.op_type in _DATA_MOVEMENT and idx == 0:
                    path.update(node.output)
                    frontier.extend(node.output)
                    continue
                ok = False
                log.warning("uint8 input '%s' reaches %s '%s' before any float Cast: TensorRT will reject this graph "
                            "(cast the frame to float first in the policy's preprocessing)", inp.name, node.op_type, node.name)
                break
        if not ok:
            continue
        cast_out = f"{inp.name}__as_float"
        for node, idx in direct:
            node.input[idx] = cast_out
        g.node.insert(0, onnx.helper.make_node("Cast", [inp.name], [cast_out], to=onnx.TensorProto.FLOAT,
                                               name=f"{inp.name}__cast_first"))
        keep = [vi for vi in g.value_info if vi.name not in path]  # their uint8 types are stale; re-inferred later
        del g.value_info[:]
        g.value_info.extend(keep)
        rewritten.append(inp.name)
        log.info("uint8 input '%s': Cast to float moved ahead of %s (TensorRT takes uint8 only into a Cast)",
                 inp.name, ", ".join(sorted({n.op_type for n, _ in direct})))
    return rewritten


def simplify(src: Path, dst: Path) -> dict:
    """cast uint8 inputs first, onnxscript optimizer, onnx shape inference, onnx.checker; returns what changed."""
    import onnx
    import onnxscript.optimizer

    model = onnx.load(str(src))
    before = len(model.graph.node)
    cast_first = cast_uint8_inputs_first(model)
    with warnings.catch_warnings(), quiet_onnx_logs():
        warnings.simplefilter("ignore")
        model = onnxscript.optimizer.optimize(model)
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))
    return {"nodes_before": before, "nodes_after": len(model.graph.node), "uint8_cast_first": cast_first}


def graph_stats(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    return {"nodes": len(model.graph.node), "params": params, "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
            "bytes": path.stat().st_size}
