"""Robots and cameras by name, as the CLIs spell them. Each branch imports its backend lazily, so a
robot computer without MuJoCo, a workstation without Interbotix, or a checkout where a backend
has not landed yet can still build every other robot.

    make_robot("fake")                    numpy point mass (tests, dry runs); "fake:ee" = WidowX-like 7-D
    make_robot("metaworld:reach-v3")      MetaWorld v3 task (Sawyer)
    make_robot("dmc:reacher-easy")        dm_control suite DOMAIN-TASK
    make_robot("widowx-sim")              our MuJoCo WidowX 250s; "widowx-sim:TASK" picks a task (reach-block,
                                          push-button, place-block, close-drawer); vary="all" varies the looks
    make_robot("widowx")                  the real arm (Interbotix)
    make_robot("widowx", emulate=True)    the real driver on MuJoCo physics (robot/emulate: rehearsal)

    make_camera(None | "none", robot, w, h)          no camera (state policies)
    make_camera("sim", robot, w, h)                  frames rendered by a simulated robot
    make_camera("realsense[:SERIAL]", robot, w, h)   Intel RealSense
    make_camera("recording:PATH", robot, w, h)       a .db3/.bag RealSense recording, played back
    make_camera("fake", robot, w, h)                 synthetic frames
"""

from __future__ import annotations

import importlib
import logging

from clamkit.errors import MissingDependency, UserError
from clamkit.robot.base import Camera, Robot

log = logging.getLogger(__name__)

ROBOTS = "fake, fake:ee, metaworld:TASK, dmc:DOMAIN-TASK, widowx-sim[:TASK], widowx"
CAMERAS = "none, sim, realsense[:SERIAL], recording:PATH, fake"


def _load(module: str, names: tuple[str, ...], what: str):
    """Import clamkit.robot.<module> and return the first class in `names` it defines."""
    full = f"clamkit.robot.{module}"
    try:
        mod = importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name in (full, "clamkit.robot." + module.split(".")[0]):
            raise UserError(f"{what} needs {full}, which this clamkit install does not have") from None
        raise MissingDependency(f"{what}: {full} could not import {e.name!r}; install it (e.g. pip install 'clamkit[sim]')") from e
    for name in names:
        if hasattr(mod, name):
            return getattr(mod, name)
    raise UserError(f"{what}: {full} defines none of {', '.join(names)}")


def make_robot(spec: str, **opts) -> Robot:
    """A Robot from its CLI name (see the module docstring); `opts` go to its constructor."""
    kind, _, arg = spec.partition(":")
    if kind == "fake":
        from clamkit.robot.fake import EE_SEMANTICS, FakeRobot

        if arg == "ee":
            opts.setdefault("semantics", EE_SEMANTICS)
        elif arg:
            raise UserError(f"unknown fake robot '{spec}' (fake or fake:ee)")
        return FakeRobot(**opts)
    if kind == "metaworld":
        if not arg:
            raise UserError("metaworld robot needs a task: metaworld:TASK, e.g. metaworld:reach-v3")
        cls = _load("metaworld", ("MetaWorldRobot",), f"robot '{spec}'")
        return cls(arg, **opts)
    if kind == "dmc":
        if not arg:
            raise UserError("dm_control robot needs DOMAIN-TASK: dmc:DOMAIN-TASK, e.g. dmc:reacher-easy")
        cls = _load("dmc", ("DMCRobot",), f"robot '{spec}'")
        return cls(arg, **opts)
    if kind == "widowx-sim":
        cls = _load("widowx_sim", ("WidowXSimRobot",), f"robot '{spec}'")
        return cls(task=arg, **opts) if arg else cls(**opts)
    if kind == "widowx":
        if arg:
            raise UserError(f"robot '{spec}': the real WidowX takes no task (did you mean widowx-sim:{arg}?)")
        if opts.pop("emulate", False):  # the real driver on emulated hardware (clam-run --emulate)
            return _load("emulate", ("EmulatedWidowXRobot",), f"robot '{spec}' (emulated)")(**opts)
        cls = _load("widowx", ("WidowXRobot", "WidowX"), f"robot '{spec}'")
        return cls(**opts)
    raise UserError(f"unknown robot '{spec}' (one of: {ROBOTS})")


def make_camera(spec: str | None, robot: Robot | None = None, width: int = 64, height: int = 64, **opts) -> Camera | None:
    """A Camera from its CLI name, or None for "none"/None. Frames come at width x height where the
    backend can deliver that (sim renders it; a RealSense picks its nearest mode and the runtime resizes)."""
    if spec is None or spec in ("", "none"):
        return None
    kind, _, arg = spec.partition(":")
    if kind == "sim":
        if robot is None:
            raise UserError("the sim camera renders a simulated robot; pass --robot")
        from clamkit.robot.sim_camera import SimCamera

        return SimCamera(robot, width=width, height=height, **opts)
    if kind == "fake":
        from clamkit.robot.fake import FakeCamera

        return FakeCamera(width=width, height=height, **opts)
    if kind == "realsense":
        cls = _load("realsense", ("RealSenseCamera",), f"camera '{spec}'")
        return cls(serial=arg or None, width=width, height=height, **opts)
    if kind == "recording":
        if not arg:
            raise UserError("recording camera needs a file: recording:PATH (.db3 or .bag)")
        cls = _load("realsense", ("RealSenseCamera",), f"camera '{spec}'")
        return cls(recording=arg, width=width, height=height, **opts)
    raise UserError(f"unknown camera '{spec}' (one of: {CAMERAS})")
