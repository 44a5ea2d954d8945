"""`clam-export`: training run -> bundle (policy.onnx + clam.json), optionally a TensorRT engine.

torch is imported only on the RUN path; `clam-export BUNDLE --trt` needs tensorrt, cuda-python,
numpy and onnxruntime-free clamkit core only, so it runs on the robot computer.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from clamkit.bundle import META_NAME
from clamkit.cli import CONTEXT_SETTINGS, handle_errors
from clamkit.errors import UserError
from clamkit.export import OPSET

log = logging.getLogger("clamkit.export")

EXAMPLES = """
\b
Examples:
  clam-export runs/reach-state --out bundles/reach            # ONNX bundle + parity check
  clam-export runs/reach-state/policy.pt --out b --exporter legacy --batch-max 32
  clam-export bundles/reach --trt --fp16                      # on the robot: engine from the bundle alone
  clam-export runs/wx-pixels --out bundles/wx --frame 640x480 # graph takes raw camera frames, crops/resizes inside
"""


def _fmt_checks(parity: dict) -> str:
    return "; ".join(f"batch {c['batch']} {c['source']}: max|Δ| {c['max_abs_error']:.1e} cos {c['cosine']:.7f}"
                     for c in parity["checks"])


def _summary_onnx(res) -> None:
    m, p, g = res.meta, res.meta.parity, res.graph
    ins = ", ".join(f"{k} {m.observation.keys[k].dtype}{list(m.observation.keys[k].shape)}" for k in m.inputs)
    click.echo(f"bundle    {res.out}  ({'valid' if m.valid else 'NOT valid'})")
    click.echo(f"graph     {ins} -> action[{m.action.dim}] ({m.action.semantics}) at {m.fps:g} Hz; "
               f"{g['nodes']} nodes, {g['params']:,} params, {g['bytes'] / 1e6:.2f} MB")
    click.echo(f"exporter  {p['exporter']}, opset {p['opset']}" + (f", simplified {p['simplified']['nodes_before']}->{p['simplified']['nodes_after']} nodes" if p.get("simplified") else ""))
    click.echo(f"parity    max|Δ| {p['max_abs_error']:.2e}  cosine {p['cosine']:.9f}  (tolerance {p['tolerance']['max_abs_error']:g} / {p['tolerance']['cosine']:g})")
    click.echo(f"          {_fmt_checks(p)}")
    if p.get("frame"):
        f = p["frame"]
        click.echo(f"frame     {f['frame_hw'][1]}x{f['frame_hw'][0]} raw -> crop + area resize {f['image_hw'][1]}x{f['image_hw'][0]} in the graph; "
                   f"vs numpy camera path: max {f['pixels_max_abs_lsb']:.0f} LSB, {f['pixels_differing']} of {f['pixels']} pixels differ, "
                   f"action max|Δ| {f['action_max_abs_error']:.1e}")
    t = res.timings
    click.echo(f"time      {t['total_s']:.1f} s (load {t['load_s']:.1f}, export {t['export_s']:.1f}, torch ref {t['torch_s']:.1f}, onnx parity {t['parity_s']:.1f})")


def _summary_trt(r: dict) -> None:
    how = "reused" if r["reused"] else f"built in {r['build_s']:.1f} s"
    click.echo(f"engine    {r['engine']}  ({how}; batch 1..{r['batch_max']}, {r['precision']})")
    click.echo(f"trt       max|Δ| {r['max_abs_error']:.2e}  cosine {r['cosine']:.9f}  (tolerance {r['tolerance']['max_abs_error']:g} / {r['tolerance']['cosine']:g})")


@click.command(epilog=EXAMPLES, context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=click.Path(exists=True, path_type=Path), metavar="RUN|BUNDLE")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Bundle directory to write [default: RUN/bundle]. An existing bundle there is replaced atomically.")
@click.option("--opset", type=click.IntRange(13, 23), default=OPSET, show_default=True, help="ONNX opset.")
@click.option("--exporter", type=click.Choice(["auto", "dynamo", "legacy"]), default="auto", show_default=True,
              help="torch.onnx exporter; auto = dynamo, falling back to legacy (TorchScript) if dynamo fails.")
@click.option("--batch-max", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="Parity is checked at batch 1 and this batch; the TensorRT profile's max batch.")
@click.option("--fp16", is_flag=True, help="Build the TensorRT engine in fp16 (needs --trt).")
@click.option("--trt", is_flag=True, help="Also build a TensorRT engine for this GPU and check its parity.")
@click.option("--trt-workspace", type=click.IntRange(16, None), default=1024, show_default=True, metavar="MB",
              help="TensorRT builder workspace limit.")
@click.option("--rebuild", is_flag=True, help="Rebuild the TensorRT engine even if a cached one matches.")
@click.option("--frame", default=None, metavar="WxH",
              help="Pixel policies: the graph takes the camera's raw uint8 frame of this size (e.g. 640x480) and does "
                   "the centre crop + area resize to the training size inside (checked against the numpy camera path).")
@handle_errors
def main(source: Path, out: Path | None, opset: int, exporter: str, batch_max: int, fp16: bool, trt: bool,
         trt_workspace: int, rebuild: bool, frame: str | None) -> None:
    """Export a trained policy to a bundle: policy.onnx (raw observations in, action out, dynamic
    batch) + clam.json (specs, rate, provenance, parity vs torch). The bundle is marked valid only
    when onnxruntime reproduces the torch policy on recorded observations at batch 1 and
    --batch-max (max|Δ| <= 1e-4, cosine >= 0.9999). Given a BUNDLE instead of a RUN, --trt builds
    this GPU's engine from the bundle alone (no torch needed)."""
    t0 = time.perf_counter()
    if fp16 and not trt:
        raise UserError("--fp16 sets the TensorRT engine's precision; add --trt")
    if (source / META_NAME).is_file():
        if not trt:
            raise UserError(f"{source} is already a bundle; add --trt to build a TensorRT engine from it, or give the training run to re-export")
        if out is not None and out.resolve() != source.resolve():
            raise UserError("--out does not apply when building an engine from a bundle (the engine is written into it)")
        if frame:
            raise UserError("--frame needs the training run, not a bundle")
        from clamkit.export.trt import build_for_bundle

        _summary_trt(build_for_bundle(source, batch_max=batch_max, fp16=fp16, workspace_mb=trt_workspace, rebuild=rebuild))
        click.echo(f"done in {time.perf_counter() - t0:.1f} s")
        return

    from clamkit.export.exporter import ExportOptions, export_run

    run_dir = source.parent if source.is_file() else source
    out = out if out is not None else run_dir / "bundle"
    policy_loader = (click.get_current_context().obj or {}).get("policy_loader")  # from clamkit.pipeline.export_main
    if policy_loader is None:
        raise UserError("exporting a training run needs the trainer's policy reader: run clam-export (clamkit.pipeline)")
    loader = policy_loader()
    frame_hw = None
    if frame:
        from clamkit.export.frame import parse_frame

        frame_hw = parse_frame(frame)
    res = export_run(source, out, ExportOptions(exporter=exporter, opset=opset, batch_max=batch_max, frame=frame_hw),
                     loader=loader)
    _summary_onnx(res)
    if trt:
        from clamkit.export.trt import build_for_bundle

        _summary_trt(build_for_bundle(out, batch_max=batch_max, fp16=fp16, workspace_mb=trt_workspace, rebuild=rebuild))
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")
