"""RUN -> BUNDLE: load the deploy policy, export it, check parity, write the bundle atomically.

The caller hands in the policy reader, `loader`, with two functions:
    load_policy(path) -> (DeployPolicy, meta)      path: RUN dir or RUN/policy.pt
    sample_observations(path, n) -> {key: array}    n recorded observations from the training data
clam-export passes the trainer's (clamkit.trainer.deploy), composed in clamkit.pipeline: this package
never imports the trainer. A DeployPolicy is an nn.Module with `input_names` (sorted subset of
["image", "state"]) whose forward takes raw observations in that order (image uint8 (B,H,W,3), state
float32 (B,D)) and returns float32 (B, action_dim) in robot units. Anything with those two functions
can stand in for the trainer (tests pass their own loader).

Atomicity: the bundle is assembled in a hidden temp dir next to --out and renamed into place
only after parity passed, so an interrupted or failed export never looks like a valid bundle
and never clobbers the previous one. A failed export is kept as OUT.failed (clam.json with
valid=false and the parity numbers) for inspection.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clamkit.bundle import META_NAME, ONNX_NAME, BundleMeta, sha256_file, write_meta
from clamkit.errors import UserError
from clamkit.export import OPSET
from clamkit.export.parity import (
    ONNX_TOLERANCE,
    PARITY_NAME,
    OnnxRunner,
    ParityError,
    check_backend,
    check_inputs,
    describe_failure,
    log_report,
    summarize,
)
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

log = logging.getLogger(__name__)

N_SINGLE = 8  # rows checked one at a time (batch 1)


@dataclass
class ExportOptions:
    """What `clam-export RUN` does; the CLI flags map 1:1."""

    exporter: str = "auto"
    """auto (dynamo, falling back to legacy), dynamo, or legacy."""
    opset: int = OPSET
    """ONNX opset."""
    batch_max: int = 16
    """Parity runs at batch 1 and batch_max; the TensorRT profile's max batch."""
    simplify: bool = True
    """Run onnxscript's optimizer + shape inference; kept only when parity still passes."""
    frame: tuple[int, int] | None = None
    """(height, width) of the camera's raw frames: the graph takes them and crops + resizes inside
    (export/frame.py); None = the graph takes frames at the training size."""


@dataclass
class ExportResult:
    out: Path
    meta: BundleMeta
    timings: dict = field(default_factory=dict)
    graph: dict = field(default_factory=dict)


def _check_samples(samples: dict, names: list[str], obs: ObservationSpec, path) -> dict[str, np.ndarray]:
    out = {}
    for k in names:
        if k not in samples:
            raise UserError(f"{path}: sample_observations returned keys {sorted(samples)}, the policy needs '{k}'")
        spec, v = obs.keys[k], np.asarray(samples[k])
        if v.ndim < 1 or len(v) == 0:
            raise UserError(f"{path}: no recorded '{k}' observations to check parity with")
        if tuple(v.shape[1:]) != spec.shape:
            raise UserError(f"{path}: recorded '{k}' has shape {list(v.shape[1:])}, the observation spec says {list(spec.shape)}")
        if v.dtype != np.dtype(spec.dtype):
            if np.issubdtype(v.dtype, np.floating) and np.issubdtype(np.dtype(spec.dtype), np.floating):
                v = v.astype(spec.dtype)
            else:
                raise UserError(f"{path}: recorded '{k}' is {v.dtype}, the observation spec says {spec.dtype}")
        out[k] = np.ascontiguousarray(v)
    return out


def _check_out(out: Path) -> None:
    """--out may be new, empty, or an older bundle; never a file or someone's directory."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / META_NAME).is_file())):
        raise UserError(f"{out} exists and is not a clamkit bundle; choose another --out or remove it")


def _commit(tmp: Path, out: Path) -> None:
    """Rename the finished temp dir onto `out`, replacing an older bundle (never a foreign directory)."""
    if out.exists():
        _check_out(out)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _check_onnx(path: Path, policy_dtypes: dict, sets, tol) -> dict:
    runner = OnnxRunner(path)
    check_inputs(runner, policy_dtypes)
    return check_backend("onnx", runner, sets, tol)


@dataclass
class _Policy:
    """The loaded deploy policy and what the bundle says about it (after --frame: the raw-frame wrapper)."""

    module: object
    names: list[str]
    obs: ObservationSpec
    action: ActionSpec
    fps: float
    la_dim: int
    samples: dict[str, np.ndarray]
    meta: dict
    raw: object = None  # the RawFramePolicy with --frame
    image_hw: tuple[int, int] | None = None  # the training frames' size with --frame


def _load(run: Path, loader, opts: ExportOptions) -> _Policy:
    """The run's policy, its specs and recorded observations (one-line UserError when malformed)."""
    policy, meta = loader.load_policy(run)
    policy.eval()
    names = list(policy.input_names)
    try:
        obs_all = ObservationSpec.from_json(meta["observation"])
        action = ActionSpec.from_json(meta["action"])
        fps, la_dim = float(meta["fps"]), int(meta["la_dim"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{run}: policy meta is malformed ({type(e).__name__}: {e})") from None
    missing = [k for k in names if k not in obs_all.keys]
    if not names or missing:
        raise UserError(f"{run}: policy inputs {names} are not all in the observation spec {sorted(obs_all.keys)}")
    obs = ObservationSpec({k: obs_all.keys[k] for k in names})
    samples = _check_samples(loader.sample_observations(run, opts.batch_max), names, obs, run)
    log.info("policy: %s -> action[%d] (%s), %d recorded observations for parity",
             ", ".join(f"{k} {obs.keys[k].dtype}{list(obs.keys[k].shape)}" for k in names), action.dim, action.semantics,
             len(next(iter(samples.values()))))
    return _Policy(policy, names, obs, action, fps, la_dim, samples, meta)


def _raw_frames(p: _Policy, frame: tuple[int, int]) -> None:
    """--frame: the graph takes raw camera frames; crop + resize move into it (export/frame.py)."""
    from clamkit.export import frame as fr

    if p.names != ["image"]:
        raise UserError(f"--frame: the policy must take the camera image alone, it takes {p.names}")
    p.image_hw = p.obs.keys["image"].shape[:2]
    p.raw = fr.RawFramePolicy(p.module, frame, p.image_hw).eval()
    p.module, p.samples = p.raw, {"image": fr.raw_frames(p.samples["image"], frame)}
    p.obs = ObservationSpec({"image": ArraySpec((*frame, 3), "uint8")})
    log.info("raw frames: %dx%d uint8 in; centre crop %s + area resize to %dx%d inside the graph", frame[1],
             frame[0], p.raw.frame.crop_text(), p.image_hw[1], p.image_hw[0])


def _make_tmp(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a bundle is copied to and read on the robot
    return tmp


def _graph(p: _Policy, run: Path, tmp: Path, opts: ExportOptions, timings: dict):
    """Export, simplify (kept only when parity still passes), annotate and check tmp/policy.onnx.
    Returns (exporter used, parity sets, checks, simplification report)."""
    from clamkit.export import onnx_export as ox

    t0 = time.perf_counter()
    raw = tmp / "raw.onnx"
    used = ox.export_onnx(p.module, p.names, p.samples, raw, exporter=opts.exporter, opset=opts.opset)
    timings["export_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sets = ox.parity_sets(p.module, p.names, p.samples, opts.batch_max, N_SINGLE)
    for ps in sets:
        if ps.action.shape[1:] != (p.action.dim,):
            raise UserError(f"{run}: the torch policy returns actions of shape {list(ps.action.shape[1:])}, the action spec says [{p.action.dim}]")
    timings["torch_s"] = time.perf_counter() - t0

    final = tmp / ONNX_NAME
    props = {"clamkit.algo": str(p.meta.get("algo", "clam")), "clamkit.inputs": ",".join(p.names),
             "clamkit.action_semantics": p.action.semantics, "clamkit.fps": str(p.fps)}
    simplified = {}
    t0 = time.perf_counter()
    if opts.simplify:
        try:
            simplified = ox.simplify(raw, final)
        except Exception as e:  # an optimizer bug must not cost the user the export
            log.warning("graph simplification failed (%s: %s); keeping the exported graph", type(e).__name__, e)
    if not final.exists():
        shutil.copyfile(raw, final)
    ox.annotate(final, props)
    dtypes = {k: p.obs.keys[k].dtype for k in p.names}
    checks = _check_onnx(final, dtypes, sets, ONNX_TOLERANCE)
    if simplified and not all(c["passed"] for c in checks):
        raw_checks = _check_onnx(raw, dtypes, sets, ONNX_TOLERANCE)
        if all(c["passed"] for c in raw_checks):
            log.warning("the simplified graph fails parity but the exported one passes; keeping the exported graph")
            shutil.copyfile(raw, final)
            ox.annotate(final, props)
            checks, simplified = _check_onnx(final, dtypes, sets, ONNX_TOLERANCE), {}
    raw.unlink()
    timings["parity_s"] = time.perf_counter() - t0
    return used, sets, checks, simplified


def _frame_parity(p: _Policy, final: Path, sets) -> dict:
    """The in-graph crop + resize against the numpy camera path training saw."""
    from clamkit.export import frame as fr

    frames = np.concatenate([ps.inputs["image"] for ps in sets])
    check = fr.check_frame_parity(p.raw.policy, p.raw, frames, OnnxRunner(final)({"image": frames}), ONNX_TOLERANCE.max_abs)
    log.info("parity frame preprocessing vs numpy camera path: max %.0f LSB, %d of %d pixels differ, "
             "action max|Δ| %.2e  %s", check["pixels_max_abs_lsb"], check["pixels_differing"],
             check["pixels"], check["action_max_abs_error"], "ok" if check["passed"] else "FAIL")
    return check


def _report(p: _Policy, final: Path, used: str, checks, simplified, frame_check, opts: ExportOptions) -> tuple[dict, dict]:
    """The parity report for clam.json (ONNX checks, plus the frame check with --frame) and the graph's stats."""
    import onnx
    import onnxruntime
    import torch

    from clamkit.export import onnx_export as ox

    graph = ox.graph_stats(final)
    if graph["opset"] != opts.opset:
        log.warning("asked for opset %d, the %s exporter wrote opset %d%s", opts.opset, used, graph["opset"],
                    " (it cannot convert below 18; --exporter legacy can)" if used == "dynamo" else "")
    report = summarize(checks, ONNX_TOLERANCE, exporter=used, opset=graph["opset"], simplified=simplified or None,
                       reference=PARITY_NAME, onnxruntime=onnxruntime.__version__, onnx=onnx.__version__,
                       torch=torch.__version__)
    if frame_check is not None:
        report["frame"] = frame_check
        report["passed"] = bool(report["passed"] and frame_check["passed"])
    log_report("onnx", report)
    return report, graph


def _bundle_meta(p: _Policy, run: Path, final: Path, report: dict, frame: tuple[int, int] | None) -> BundleMeta:
    provenance = dict(p.meta.get("provenance") or {})
    provenance["export"] = {"run": str(run.resolve()), "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    bmeta = BundleMeta(observation=p.obs, action=p.action, fps=p.fps, la_dim=p.la_dim, inputs=p.names,
                       onnx_sha256=sha256_file(final), algo=str(p.meta.get("algo", "clam")), valid=report["passed"],
                       parity=report, provenance=provenance, camera=dict(p.meta.get("camera") or {}))
    if p.raw is not None:  # what the graph does to a frame, for a reader of clam.json
        bmeta.camera["frame"] = {"capture_hw": list(frame), "crop": "center", "resize": "area",
                                 "crop_yx_hw": report["frame"]["crop_yx_hw"], "image_hw": list(p.image_hw)}
    return bmeta


def _finish(tmp: Path, out: Path, report: dict, checks) -> None:
    """Move the finished bundle onto `out`, or keep a failed one as OUT.failed and raise ParityError."""
    if not report["passed"]:
        failed = out.with_name(out.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(tmp, failed)
        what = describe_failure("ONNX", report) if not all(c["passed"] for c in checks) else (
            f"in-graph frame preprocessing differs from the numpy camera path (max {report['frame']['pixels_max_abs_lsb']:.0f} LSB "
            f"on {report['frame']['pixels_differing']} pixels)")
        raise ParityError(what + f"; {out} left untouched, see {failed / META_NAME}")
    _commit(tmp, out)
    shutil.rmtree(out.with_name(out.name + ".failed"), ignore_errors=True)  # an earlier failed attempt is moot


def export_run(run: str | Path, out: str | Path, opts: ExportOptions | None = None, *, loader) -> ExportResult:
    """Export the deploy policy of training run `run`, read with `loader` (see above), to bundle directory `out`.
    Raises ParityError on a mismatch."""
    opts = opts or ExportOptions()
    run, out = Path(run), Path(out)
    _check_out(out)
    timings = {}
    t_all = time.perf_counter()
    p = _load(run, loader, opts)
    timings["load_s"] = time.perf_counter() - t_all
    if opts.frame:
        _raw_frames(p, opts.frame)

    tmp = _make_tmp(out)
    try:
        used, sets, checks, simplified = _graph(p, run, tmp, opts, timings)
        t0 = time.perf_counter()
        frame_check = _frame_parity(p, tmp / ONNX_NAME, sets) if p.raw is not None else None
        timings["parity_s"] += time.perf_counter() - t0
        report, graph = _report(p, tmp / ONNX_NAME, used, checks, simplified, frame_check, opts)
        sets[0].save(tmp / PARITY_NAME)  # the recorded set: what a TensorRT engine is checked against later
        bmeta = _bundle_meta(p, run, tmp / ONNX_NAME, report, opts.frame)
        write_meta(tmp, bmeta)  # last file written: its presence + valid=true means the bundle is whole
        _finish(tmp, out, report, checks)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings["total_s"] = time.perf_counter() - t_all
    return ExportResult(out=out, meta=bmeta, timings=timings, graph=graph)
