"""`clam-run` (drive a robot with a bundle) and `clam-eval` (sim-in-the-loop success rate)."""

from __future__ import annotations

import logging
import sys

import click
import yaml

from clamkit.bundle import read_meta
from clamkit.cli import CONTEXT_SETTINGS, debug_enabled, handle_errors
from clamkit.errors import UserError
from clamkit.outcomes import EVAL_SEED
from clamkit.runtime.backends import KINDS, make_backend
from clamkit.runtime.loop import LoopOptions, run_loop
from clamkit.runtime.subscribers import Recorder
from clamkit.runtime.telemetry import Telemetry, format_summary

log = logging.getLogger(__name__)

EXIT_FAULT, EXIT_INTERRUPTED = 1, 130



def parse_opts(items: tuple[str, ...], flag: str) -> dict:
    """("max_steps=100", "state=false") -> {"max_steps": 100, "state": False} (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UserError(f"{flag} {item!r}: cannot parse the value ({e.problem})") from None
    return out


def parse_size(size: str | None, meta) -> tuple[int, int]:
    """'640x480' -> (480, 640) as (height, width); default: the bundle's image size, else 64x64."""
    if size:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise UserError(f"--camera-size {size!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
        return h, w
    if "image" in meta.observation.keys:
        return tuple(meta.observation.keys["image"].shape[:2])
    return 64, 64


@click.command(context_settings=CONTEXT_SETTINGS, epilog="""\b
Examples:
  clam-run bundles/reach --robot metaworld:reach-v3 --hz 0 --episodes 3
  clam-run bundles/widowx --robot widowx --camera realsense --hz 5 --record data/deploy --report run.json
  clam-run bundles/widowx --robot widowx --camera realsense --emulate --episodes 3   # rehearsal, no hardware
  clam-run bundles/widowx --robot widowx-sim:push-button --camera sim --steps 100 --dry-run
  clam-run bundles/toy --robot fake --robot-opt max_steps=200 --backend auto
  clam-run bundles/widowx --robot widowx --camera realsense --threads 1   # a 2-core robot computer

Ctrl-C stops after the current tick: the robot goes to its safe pose, the episode so far is
recorded and the report written (a second Ctrl-C aborts at once). Exit codes: 0 done,
1 stopped by a fault, 2 bad input (incl. a bundle that does not match the robot), 130 Ctrl-C.""")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--robot", required=True, metavar="ROBOT",
              help="fake | fake:ee | metaworld:TASK | dmc:DOMAIN-TASK | widowx-sim[:TASK] | widowx")
@click.option("--camera", default=None, metavar="CAMERA", help="none | sim | realsense[:SERIAL] | recording:PATH | fake (default none).")
@click.option("--camera-size", default=None, metavar="WxH", help="Camera resolution (default: the bundle's image size).")
@click.option("--hz", type=click.FloatRange(min=0), default=None,
              help="Control rate; 0 = as fast as possible. Default: the bundle's rate (5 Hz for WidowX bundles).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Ticks in all, new episodes starting as episodes end; with --episodes, the limit per episode.")
@click.option("--episodes", type=click.IntRange(min=1), default=None, help="Number of episodes (default 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Episode i is reset with seed + i.")
@click.option("--record", type=click.Path(file_okay=False), default=None, help="Append the episodes to this dataset directory.")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Write the run summary as JSON here.")
@click.option("--backend", type=click.Choice(KINDS), default="ort", show_default=True,
              help="onnxruntime, TensorRT, or TensorRT when available else onnxruntime.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="onnxruntime intra-op threads (default: 2, but one fewer than the computer's cores, leaving a core "
                   "to the camera and the driver).")
@click.option("--dry-run", is_flag=True, help="Run everything (camera, inference, safety, logging) but send nothing.")
@click.option("--max-delta", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Largest change of any action dimension between ticks (default: off).")
@click.option("--max-frame-age", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
              help="Seconds after which a camera frame is stale and the run stops.")
@click.option("--infer-timeout", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Seconds one inference may take; a slower one stops the run before its action is sent.")
@click.option("--max-overrun", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds a tick may end past its deadline before the run stops (default: overruns are only counted).")
@click.option("--robot-opt", multiple=True, metavar="KEY=VALUE", help="Robot constructor option (repeatable), e.g. max_steps=200.")
@click.option("--camera-opt", multiple=True, metavar="KEY=VALUE", help="Camera constructor option (repeatable).")
@click.option("--emulate", is_flag=True,
              help="Rehearsal without hardware: --robot widowx (and --camera realsense) run their real drivers "
                   "against MuJoCo physics (docs/deploy.md).")
@click.option("--continue-after-fault", is_flag=True,
              help="An episode fault (the WidowX effort guard, also in widowx-sim) fails that episode and the run goes "
                   "on with the next one after the usual reset; other faults still stop the run (default: it stops).")
@click.option("--live-every", type=click.IntRange(min=0), default=None,
              help="Ticks between live log lines (default: about every 5 s; 0 = never).")
@handle_errors
def run_main(bundle, robot, camera, camera_size, hz, steps, episodes, seed, record, report, backend, threads, dry_run,
             max_delta, max_frame_age, infer_timeout, max_overrun, robot_opt, camera_opt, emulate, continue_after_fault,
             live_every):
    """Run a bundle's policy on a robot in a fixed-rate loop."""
    from clamkit.robot.factory import make_camera, make_robot

    if threads is not None and backend == "trt":
        raise UserError("--threads sets onnxruntime's threads; the TensorRT backend has none")
    meta = read_meta(bundle)
    hz = meta.fps if hz is None else hz
    ropts = parse_opts(robot_opt, "--robot-opt")
    if emulate:
        if robot != "widowx":
            raise UserError(f"--emulate rehearses the real WidowX drivers: use --robot widowx, not '{robot}'")
        ropts["emulate"] = True
    rob = make_robot(robot, **ropts)
    h, w = parse_size(camera_size, meta)
    cam = make_camera(camera, rob, width=w, height=h, **parse_opts(camera_opt, "--camera-opt"))
    tel = Telemetry(hz, live_every=live_every if live_every is not None else max(int(round(5 * hz)), 1) if hz else 1000)
    with make_backend(bundle, backend, meta=meta, **({"threads": threads} if threads else {})) as be:
        try:
            opts = LoopOptions(hz=hz, steps=steps, episodes=episodes, seed=seed, dry_run=dry_run, report=report,
                               continue_after_fault=continue_after_fault,
                               safety={"max_delta": max_delta, "max_frame_age": max_frame_age,
                                       "infer_timeout": infer_timeout, "max_overrun": max_overrun},
                               report_extra={"bundle": str(bundle), "record": str(record) if record else None})
            summary = run_loop(rob, be, cam, opts, subscribers=[Recorder(record)] if record else [], telemetry=tel)
        except UserError:
            raise
        except Exception as e:  # a fault; run_loop already stopped the robot and wrote the report
            click.echo(format_summary(tel.summary()), err=True)
            if debug_enabled():  # --debug: the traceback, not one line
                raise
            click.echo(f"error: run stopped by a fault: {type(e).__name__}: {e}", err=True)
            sys.exit(EXIT_FAULT)
    click.echo(format_summary(summary))
    if record:
        click.echo(f"recording   {record}")
    if report:
        click.echo(f"report      {report}")
    if summary["stop_reason"].startswith("interrupted"):
        sys.exit(EXIT_INTERRUPTED)


@click.command(context_settings=CONTEXT_SETTINGS, epilog="""\b
Examples:
  clam-eval bundles/reach --env metaworld:reach-v3 --episodes 40 --seed 1000 --json eval.json
  clam-eval bundles/reacher --env dmc:reacher-easy --episodes 20
  clam-eval bundles/pix --env metaworld:button-press-v3 --camera sim --video videos/

Success rate = fraction of episodes that succeeded at any step (MetaWorld, WidowX sim);
dm_control tasks report the mean return. Episode i is reset with seed + i, so two bundles
evaluated with the same --seed see the same episodes.""")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--env", required=True, metavar="ENV", help="metaworld:TASK | dmc:DOMAIN-TASK | widowx-sim:TASK | fake")
@click.option("--episodes", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seed", type=int, default=EVAL_SEED, show_default=True,
              help="Episode i is reset with seed + i (default: far from clam-record's seeds, so scenes are unseen in training).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the results as JSON here.")
@click.option("--video", type=click.Path(file_okay=False), default=None, help="Write one GIF per episode into this directory.")
@click.option("--camera", default=None, metavar="CAMERA", help="sim (default for image bundles) | none.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Step limit per episode (default: the task's).")
@click.option("--backend", type=click.Choice(KINDS), default="ort", show_default=True)
@click.option("--robot-opt", multiple=True, metavar="KEY=VALUE", help="Environment constructor option (repeatable).")
@handle_errors
def eval_main(bundle, env, episodes, seed, json_path, video, camera, max_steps, backend, robot_opt):
    """Evaluate a bundle in simulation through the same loop the robot runs."""
    from clamkit.runtime.evaluate import evaluate

    try:
        result = evaluate(bundle, env, episodes=episodes, seed=seed, camera=camera, backend=backend, max_steps=max_steps,
                          video=video, json_path=json_path, robot_opts=parse_opts(robot_opt, "--robot-opt"),
                          progress=sys.stderr.isatty())
    except UserError:
        raise
    except Exception as e:  # a fault in the simulation or the policy; the loop already cleaned up
        if debug_enabled():  # --debug: the traceback, not one line
            raise
        click.echo(f"error: evaluation stopped by a fault: {type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_FAULT)
    click.echo(format_summary(result))
    if json_path:
        click.echo(f"results     {json_path}")
