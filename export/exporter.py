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


def export_run(run: str | Path, out: str | Path, opts: ExportOptions | None = None, *, loader) -> ExportResult:
    """Export the deploy policy of training run `run`, read with `loader` (see above), to bundle directory `out`.
    Raises ParityError on a mismatch."""
    import onnx
    import onnxruntime
    import torch

    from clamkit.export import onnx_export as ox

    opts = opts or ExportOptions()
    run, out = Path(run), Path(out)
    _check_out(out)
    timings = {}
    t_all = time.perf_counter()

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
    timings["load_s"] = time.perf_counter() - t_all
    log.info("policy: %s -> action[%d] (%s), %d recorded observations for parity",
             ", ".join(f"{k} {obs.keys[k].dtype}{list(obs.keys[k].shape)}" for k in names), action.dim, action.semantics,
             len(next(iter(samples.values()))))

    raw_policy = None
    if opts.frame:  # the graph takes raw camera frames: crop + resize move into it (export/frame.py)
        from clamkit.export import frame as fr

        if names != ["image"]:
            raise UserError(f"--frame: the policy must take the camera image alone, it takes {names}")
        image_hw = obs.keys["image"].shape[:2]
        raw_policy = fr.RawFramePolicy(policy, opts.frame, image_hw).eval()
        policy_hw = image_hw
        policy, samples = raw_policy, {"image": fr.raw_frames(samples["image"], opts.frame)}
        obs = ObservationSpec({"image": ArraySpec((*opts.frame, 3), "uint8")})
        log.info("raw frames: %dx%d uint8 in; centre crop %s + area resize to %dx%d inside the graph", opts.frame[1],
                 opts.frame[0], raw_policy.frame.crop_text(), image_hw[1], image_hw[0])

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a bundle is copied to and read on the robot
    try:
        t0 = time.perf_counter()
        raw = tmp / "raw.onnx"
        used = ox.export_onnx(policy, names, samples, raw, exporter=opts.exporter, opset=opts.opset)
        timings["export_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        sets = ox.parity_sets(policy, names, samples, opts.batch_max, N_SINGLE)
        for ps in sets:
            if ps.action.shape[1:] != (action.dim,):
                raise UserError(f"{run}: the torch policy returns actions of shape {list(ps.action.shape[1:])}, the action spec says [{action.dim}]")
        timings["torch_s"] = time.perf_counter() - t0

        final = tmp / ONNX_NAME
        props = {"clamkit.algo": str(meta.get("algo", "clam")), "clamkit.inputs": ",".join(names),
                 "clamkit.action_semantics": action.semantics, "clamkit.fps": str(fps)}
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
        dtypes = {k: obs.keys[k].dtype for k in names}
        checks = _check_onnx(final, dtypes, sets, ONNX_TOLERANCE)
        if simplified and not all(c["passed"] for c in checks):
            raw_checks = _check_onnx(raw, dtypes, sets, ONNX_TOLERANCE)
            if all(c["passed"] for c in raw_checks):
                log.warning("the simplified graph fails parity but the exported one passes; keeping the exported graph")
                shutil.copyfile(raw, final)
                ox.annotate(final, props)
                checks, simplified = _check_onnx(final, dtypes, sets, ONNX_TOLERANCE), {}
        raw.unlink()
        frame_check = None
        if raw_policy is not None:  # the in-graph crop + resize against the numpy camera path training saw
            frames = np.concatenate([ps.inputs["image"] for ps in sets])
            frame_check = fr.check_frame_parity(raw_policy.policy, raw_policy, frames, OnnxRunner(final)({"image": frames}),
                                                ONNX_TOLERANCE.max_abs)
            log.info("parity frame preprocessing vs numpy camera path: max %.0f LSB, %d of %d pixels differ, "
                     "action max|Δ| %.2e  %s", frame_check["pixels_max_abs_lsb"], frame_check["pixels_differing"],
                     frame_check["pixels"], frame_check["action_max_abs_error"], "ok" if frame_check["passed"] else "FAIL")
        timings["parity_s"] = time.perf_counter() - t0

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
        sets[0].save(tmp / PARITY_NAME)  # the recorded set: what a TensorRT engine is checked against later
        provenance = dict(meta.get("provenance") or {})
        provenance["export"] = {"run": str(run.resolve()), "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        bmeta = BundleMeta(observation=obs, action=action, fps=fps, la_dim=la_dim, inputs=names,
                           onnx_sha256=sha256_file(final), algo=str(meta.get("algo", "clam")), valid=report["passed"],
                           parity=report, provenance=provenance, camera=dict(meta.get("camera") or {}))
        if raw_policy is not None:  # what the graph does to a frame, for a reader of clam.json
            bmeta.camera["frame"] = {"capture_hw": list(opts.frame), "crop": "center", "resize": "area",
                                     "crop_yx_hw": frame_check["crop_yx_hw"], "image_hw": list(policy_hw)}
        write_meta(tmp, bmeta)  # last file written: its presence + valid=true means the bundle is whole
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings["total_s"] = time.perf_counter() - t_all
    return ExportResult(out=out, meta=bmeta, timings=timings, graph=graph)
