"""The control loop (DESIGN §6): the one code path that drives a real WidowX, a MuJoCo simulation,
and the trainer's periodic evaluation.

    with make_backend("bundles/reach") as backend:
        report = run_loop(make_robot("metaworld:reach-v3"), backend, options=LoopOptions(hz=0, episodes=10, seed=100),
                          subscribers=[Recorder("data/deploy")])

Per tick, at a fixed rate on perf_counter deadlines (hz=0: as fast as possible):
    camera frame -> watchdog -> robot state -> observation dict (runtime/observation.py) ->
    backend.infer (on a worker thread, runtime/inference.py) -> safety layer -> robot.send_action ->
    subscribers (runtime/subscribers.py: recording, video, progress).
The loop owns the rate, the episodes and the step limit; backends, the safety layer, telemetry
and subscribers plug in. Before anything moves, the bundle's specs are checked against the robot
and camera (SpecMismatch). Ctrl-C (SIGINT/SIGTERM, runtime/stop.py) stops after the current tick
(a second Ctrl-C aborts at once); a fault stops at once, and so does an inference that does not
return within the safety layer's infer_timeout (an EpisodeFault, e.g. the WidowX effort guard, may instead
fail just its episode: LoopOptions.continue_after_fault, for evaluation and rehearsal). Either way, in a
finally block: nothing more is sent, the robot goes to its safe pose and disconnects, the partial episode
is recorded, and the report is written. Faults are re-raised afterwards; an interrupt is not.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clamkit.errors import UserError
from clamkit.robot.base import Camera, EpisodeFault, Robot
from clamkit.runtime.backends import Backend
from clamkit.runtime.inference import InferenceWorker
from clamkit.runtime.observation import ObservationBuilder, check_setup
from clamkit.runtime.safety import SafetyLayer
from clamkit.runtime.stop import StopRequest, sleep_until
from clamkit.runtime.subscribers import Subscriber
from clamkit.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass
class LoopOptions:
    """How run_loop runs; clam-run's flags map onto these."""

    hz: float = 5.0
    """Control rate; 0 = as fast as possible."""
    steps: int | None = None
    """With `episodes`: the tick limit per episode. Alone: ticks in all, a new episode starting whenever
    one ends (so `clam-run --steps 200` really runs 200 ticks). With neither: one episode."""
    episodes: int | None = None
    """Number of episodes; episode i starts with robot.reset(seed + i) and ends at robot.episode_done()."""
    seed: int = 0
    """Seed of the first episode."""
    safety: SafetyLayer | dict | None = None
    """A SafetyLayer, or a dict of SafetyLayer.for_robot options (built after connect(), since some robots
    know their action spec only once connected); default SafetyLayer.for_robot(robot)."""
    dry_run: bool = False
    """Everything runs (camera, inference, safety, telemetry, recording unlabelled) but no action is sent
    and the robot is not sent to its safe pose."""
    report: str | Path | None = None
    """JSON file for the run summary."""
    report_extra: dict = field(default_factory=dict)
    """Extra fields for the summary header (e.g. the bundle path); subscribers see them at on_run_start."""
    disconnect: bool = True
    """Disconnect robot and camera at the end (False: the caller reuses them)."""
    continue_after_fault: bool = False
    """An EpisodeFault (e.g. the WidowX effort guard) ends its episode as a failure ("success" False, the reason
    under "fault") and the next episode starts with the usual reset(); other faults still stop the run. False:
    it stops the run like any fault (the default on hardware, where someone should look first)."""
    warmup_timeout: float | None = 60.0
    """Seconds the warm-up inference before the first tick may take (lazy set-up: sessions, CUDA context);
    None = no limit. Later inferences are bounded by the safety layer's infer_timeout."""

    def __post_init__(self):
        self.hz = float(self.hz)
        if self.hz < 0:
            raise ValueError("hz must be >= 0 (0 = as fast as possible)")


def run_loop(robot: Robot, backend: Backend, camera: Camera | None = None, options: LoopOptions | None = None,
             subscribers: list[Subscriber] | tuple = (), telemetry: Telemetry | None = None) -> dict:
    """Run `backend`'s policy on `robot` (and `camera`) as `options` say; subscribers are notified per run,
    episode and tick. Returns the telemetry summary; re-raises faults after cleanup."""
    run = _Run(robot, backend, camera, options or LoopOptions(), list(subscribers), telemetry)
    with StopRequest() as run.stop, InferenceWorker(backend) as run.worker:
        try:
            run.start()
            run.episodes()
            run.telemetry.stop_reason = run.stop.reason or "completed"
        except KeyboardInterrupt:
            run.telemetry.stop_reason = "interrupted (SIGINT)"
        except EOFError as e:  # a recording (recording:PATH camera) ran out of frames: a normal end
            run.telemetry.stop_reason = f"end of camera stream ({e})"
        except UserError as e:  # bad setup (SpecMismatch, a dataset that does not match): nothing ran
            run.fault = e
            run.telemetry.stop_reason = f"error: {e}"
        except BaseException as e:  # a fault: robot/camera error, StaleFrame, InferenceTimeout, NaN streak, bug
            run.fault = e
            run.telemetry.stop_reason = f"fault: {type(e).__name__}: {e}"
            log.error("run stopped by a fault: %s: %s", type(e).__name__, e)
        finally:
            run.cleanup()
    if run.fault is not None:
        raise run.fault
    return run.extra | run.telemetry.summary()


class _Run:
    """The state of one run_loop call: devices, safety, the open episode, the tick deadline."""

    stop: StopRequest
    worker: InferenceWorker

    def __init__(self, robot, backend, camera, opts: LoopOptions, subs: list, telemetry: Telemetry | None):
        self.robot, self.backend, self.camera, self.opts, self.subs = robot, backend, camera, opts, subs
        self.meta = backend.meta
        self.telemetry = telemetry or Telemetry(opts.hz)
        self.telemetry.hz = opts.hz
        self.build = ObservationBuilder(self.meta.observation, self.meta.inputs)
        self.period = 1.0 / opts.hz if opts.hz else 0.0
        self.safety: SafetyLayer | None = None
        self.fault: BaseException | None = None
        self.episode_open, self.ep_seed, self.warm = False, opts.seed, False
        self.moved = False  # reset() or send_action() reached the robot: go_safe() on the way out
        self.overruns_logged = 0
        self.deadline = 0.0
        self.extra = {"robot": robot.name, "camera": camera.name if camera else None, "backend": backend.name,
                      "dry_run": opts.dry_run, "seed": opts.seed} | dict(opts.report_extra or {})
        if opts.hz and self.meta.fps and abs(opts.hz - self.meta.fps) > 0.01 * self.meta.fps:
            log.warning("running at %g Hz; the policy was trained on %g Hz data", opts.hz, self.meta.fps)

    @property
    def total_mode(self) -> bool:  # `steps` counts ticks over all episodes
        return self.opts.episodes is None and self.opts.steps is not None

    def start(self) -> None:
        """Connect (moves nothing), check the specs before reset() or any action, build the safety layer."""
        robot, camera, opts = self.robot, self.camera, self.opts
        for dev in (robot, camera):
            if dev is not None and not dev.is_connected:
                dev.connect()
        check_setup(self.meta, robot, camera)
        safety = opts.safety
        self.safety = safety if isinstance(safety, SafetyLayer) else SafetyLayer.for_robot(robot, **(safety or {}))
        self.telemetry.safety = self.safety
        for s in self.subs:
            s.on_run_start(robot, camera, opts.hz or self.meta.fps or robot.fps, self.extra)
        n = 1 if opts.episodes is None else int(opts.episodes)
        length = f"{opts.steps} ticks" if self.total_mode else f"{n} episode(s)" + (f" of <= {opts.steps} steps" if opts.steps else "")
        log.info("running %s on %s%s at %s, %s%s", self.backend.name, robot.name, f" + camera {camera.name}" if camera else "",
                 f"{opts.hz:g} Hz" if opts.hz else "max rate", length, " [DRY RUN: nothing is sent]" if opts.dry_run else "")

    def episodes(self) -> None:
        opts, tel = self.opts, self.telemetry
        for ep in itertools.count() if self.total_mode else range(1 if opts.episodes is None else int(opts.episodes)):
            if self.stop.requested or (self.total_mode and tel.ticks >= opts.steps):
                break
            limit = opts.steps - tel.ticks if self.total_mode else opts.steps
            self.episode(ep, limit)

    def episode(self, ep: int, limit: int | None) -> None:
        self.ep_seed = self.opts.seed + ep
        self.moved = True
        self.robot.reset(seed=self.ep_seed)
        self.safety.reset()
        for s in self.subs:
            s.on_episode_start(ep, self.ep_seed)
        self.episode_open = True
        if not self.warm:  # lazy inference set-up must not cost the first tick its deadline
            zeros = {k: np.zeros(v.shape, v.dtype) for k, v in self.meta.observation.keys.items()}
            self.worker.infer(zeros, self.opts.warmup_timeout)
            self.warm = True
        t, fault = 0, None
        self.deadline = time.perf_counter() + self.period
        try:
            while (limit is None or t < limit) and not self.stop.requested:
                if not self.tick(t):
                    break
                t += 1
                if self.robot.episode_done():
                    break
                if self.period:
                    sleep_until(self.deadline, self.stop)
                    self.deadline += self.period
        except EpisodeFault as e:
            if not self.opts.continue_after_fault:
                raise
            fault = f"{type(e).__name__}: {e}"
            log.warning("episode %d (seed %d) ended by a fault: %s", ep, self.ep_seed, fault)
        info = dict(self.robot.episode_info())
        if fault is not None:  # a failure, whatever the scene looked like before (the arm had to be stopped)
            info |= {"success": False, "success_before_fault": info.get("success"), "fault": fault}
        if self.stop.requested:
            info["interrupted"] = True
        self.end_episode(info, ep)
        self.episode_open = False

    def tick(self, t: int) -> bool:
        """One tick: read, infer, filter, send, notify, time. False when a stop arrived during inference."""
        robot, camera, safety = self.robot, self.camera, self.safety
        t0 = time.perf_counter()
        frame = camera.async_read() if camera is not None else None
        if frame is not None:
            safety.check_frame(frame)
        tc = time.perf_counter()
        obs = robot.get_observation()
        tr = time.perf_counter()
        policy_obs = self.build(obs, frame)
        t1 = time.perf_counter()
        raw = self.worker.infer(policy_obs, safety.infer_timeout)
        t2 = time.perf_counter()
        safety.check_inference(t2 - t1)
        action = safety(raw, robot)
        ts = time.perf_counter()
        if self.stop.requested:
            return False  # Ctrl-C arrived during inference: do not send
        sent = None if self.opts.dry_run else robot.send_action(action)
        t3 = time.perf_counter()
        age = time.monotonic() - frame.timestamp if frame is not None else None
        if self.opts.dry_run and (t < 5 or log.isEnabledFor(logging.DEBUG)):
            log.info("dry run, tick %d: action %s (not sent)", t, np.array2string(action, precision=3))
        for s in self.subs:
            s.on_step(obs, frame, sent)
        late = self._check_deadline()
        self.telemetry.tick(t2 - t1, t3 - t0, age, late is not None, stages=(tc - t0, tr - tc, t1 - tr, ts - t2, t3 - ts))
        if late is not None:
            safety.check_overrun(late)
        return True

    def _check_deadline(self) -> float | None:
        """Seconds past the tick's deadline (warned about, the deadline re-anchored), or None when in time."""
        if not self.period:
            return None
        now = time.perf_counter()
        if now <= self.deadline:
            return None
        late = now - self.deadline
        if self.overruns_logged < 5 or (self.telemetry.missed + 1) % 100 == 0:
            log.warning("tick %d overran its %.1f ms budget by %.1f ms", self.telemetry.ticks, self.period * 1e3, late * 1e3)
            self.overruns_logged += 1
        self.deadline = now  # re-anchor: do not burst to catch up
        return late

    def end_episode(self, info: dict, ep: int, final: bool = True) -> None:
        """Read o_T (when the devices still answer), hand the episode to the subscribers, log the outcome."""
        obs = frame = None
        if final:
            try:
                obs = self.robot.get_observation()
                frame = self.camera.async_read() if self.camera is not None else None
            except Exception as e:  # noqa: BLE001 - o_T is a nicety; the episode is recorded without it
                log.warning("could not read the final observation: %s", e)
                obs = frame = None
        info = {"seed": self.ep_seed} | info
        self.telemetry.episode(info)
        for s in self.subs:
            try:
                s.on_episode_end(obs, frame, info)
            except Exception as e:  # noqa: BLE001 - a recording problem must not hide the run's outcome
                log.error("%s could not finish the episode: %s: %s", type(s).__name__, type(e).__name__, e)
        log.info("episode %d (seed %d): %s", len(self.telemetry.episodes), self.ep_seed,
                 ", ".join(f"{k} {v}" for k, v in info.items() if k != "seed") or "done")

    def cleanup(self) -> None:
        """Nothing more is sent from here on; further Ctrl-C is ignored until the robot is safe."""
        self.stop.cleaning = True
        robot, fault = self.robot, self.fault
        if self.episode_open:
            info = {"interrupted": True} if fault is None else {"fault": f"{type(fault).__name__}: {fault}"}
            try:
                info = dict(robot.episode_info()) | info
            except Exception:  # noqa: BLE001 - the robot may be what failed
                pass
            self.end_episode(info, -1, final=fault is None)
        if self.moved and not self.opts.dry_run and robot.is_connected:
            try:
                robot.go_safe()
            except Exception as e:  # noqa: BLE001
                log.error("go_safe failed: %s: %s", type(e).__name__, e)
        if self.opts.disconnect:
            for dev in (self.camera, robot):
                if dev is not None and dev.is_connected:
                    try:
                        dev.disconnect()
                    except Exception as e:  # noqa: BLE001
                        log.error("disconnecting %s failed: %s", dev.name, e)
        for s in self.subs:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001
                log.error("closing %s failed: %s", type(s).__name__, e)
        if self.opts.report is not None:
            try:
                log.info("report written to %s", self.telemetry.write(self.opts.report, extra=self.extra))
            except OSError as e:
                log.error("could not write the report %s: %s", self.opts.report, e)
