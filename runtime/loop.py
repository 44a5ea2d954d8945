"""The control loop (DESIGN §6): the one code path that drives a real WidowX, a MuJoCo simulation,
and the trainer's periodic evaluation.

    with make_backend("bundles/reach") as backend:
        report = run_loop(make_robot("metaworld:reach-v3"), backend, hz=0, episodes=10, seed=100)

Per tick, at a fixed rate on perf_counter deadlines (hz=0: as fast as possible):
    camera frame -> watchdog -> robot state -> observation dict (frame resized to the bundle's
    image size) -> backend.infer -> safety layer -> robot.send_action -> subscribers (recording).
The loop owns the rate, the episodes and the step limit; backends, the safety layer, telemetry
and subscribers (recording, video) plug in. Before anything moves, the bundle's specs are checked
against the robot and camera (SpecMismatch). Ctrl-C (SIGINT/SIGTERM) stops after the current tick
(a second Ctrl-C aborts at once); a fault stops at once. Either way, in a finally block: nothing
more is sent, the robot goes to its safe pose and disconnects, the partial episode is recorded,
and the report is written. Faults are re-raised afterwards; an interrupt is not.
"""

from __future__ import annotations

import functools
import itertools
import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np

from clamkit.dataset import DatasetWriter
from clamkit.errors import UserError
from clamkit.robot.base import Camera, Frame, Robot
from clamkit.runtime.backends import Backend
from clamkit.runtime.safety import SafetyLayer
from clamkit.runtime.telemetry import Telemetry
from clamkit.specs import ObservationSpec, check_compatible

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- observations


@functools.lru_cache(maxsize=32)
def _nearest(src: int, dst: int) -> np.ndarray:
    return np.minimum(((np.arange(dst) + 0.5) * src / dst).astype(np.intp), src - 1)


def resize_image(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize an (h, w, C) uint8 frame to (H, W, C) with numpy only. Downscaling averages boxes
    (area filter: nearest-sample to a multiple of the target, then mean over fh x fw blocks, in
    integers), so a 480x640 frame does not alias into a 64x64 one (~2 ms on one core); upscaling is
    nearest-neighbour. The aspect ratio is not kept (the frame is squashed)."""
    H, W = hw
    h, w, C = img.shape
    if (h, w) == (H, W):
        return img
    fh, fw = max(h // H, 1), max(w // W, 1)
    if h != H * fh:
        img = img.take(_nearest(h, H * fh), axis=0)  # (H*fh, w, C)
    if w != W * fw:
        img = img.take(_nearest(w, W * fw), axis=1)  # (H*fh, W*fw, C)
    if fh == fw == 1:
        return np.ascontiguousarray(img)
    acc = np.uint16 if fh <= 257 else np.uint32  # fh rows of uint8 fit a uint16
    s = img.reshape(H, fh, W * fw, C).sum(axis=1, dtype=acc)  # (H, W*fw, C)
    s = s.reshape(H, W, fw, C).sum(axis=2, dtype=np.uint32)  # (H, W, C)
    n = fh * fw
    return ((s + n // 2) // n).astype(np.uint8)


class ObservationBuilder:
    """Robot observation + camera frame -> the dict of raw inputs the bundle's graph takes."""

    def __init__(self, spec: ObservationSpec, inputs: list[str]):
        self.inputs = list(inputs)
        self.specs = {k: spec.keys[k] for k in self.inputs}
        self.image_hw = tuple(spec.keys["image"].shape[:2]) if "image" in spec.keys else None

    def __call__(self, obs: dict[str, np.ndarray], frame: Frame | None) -> dict[str, np.ndarray]:
        out = {}
        for key in self.inputs:
            if key == "image":
                img = frame.image if frame is not None else obs["image"]
                out[key] = resize_image(img, self.image_hw)  # (H, W, 3) uint8
            else:
                out[key] = np.asarray(obs[key], dtype=self.specs[key].dtype)
        return out


def provided_spec(robot: Robot, camera: Camera | None) -> ObservationSpec:
    """What robot + camera deliver: the robot's keys plus "image" from the camera."""
    keys = dict(robot.observation_spec.keys)
    if camera is not None:
        keys["image"] = camera.spec
    return ObservationSpec(keys)


def check_setup(meta, robot: Robot, camera: Camera | None) -> None:
    """SpecMismatch (one line) unless robot + camera can serve the bundle."""
    check_compatible(f"robot '{robot.name}'" + (f" + camera '{camera.name}'" if camera else ""),
                     meta.observation, provided_spec(robot, camera))
    check_compatible(f"robot '{robot.name}'", meta.action, robot.action_spec)


# ----------------------------------------------------------------------------- subscribers


class Subscriber:
    """Sees every tick of every episode (recording, video). All methods are optional."""

    def on_episode_start(self, episode: int, seed: int) -> None: ...

    def on_step(self, obs: dict[str, np.ndarray], frame: Frame | None, action: np.ndarray | None) -> None:
        """obs/frame the policy saw at t and the action actually sent at t (None in a dry run)."""

    def on_episode_end(self, obs: dict[str, np.ndarray] | None, frame: Frame | None, info: dict) -> None:
        """The final observation o_T (None when it could not be read after a fault) and the outcome."""

    def close(self) -> None: ...


class Recorder(Subscriber):
    """Writes each episode into a clamkit dataset (deployments become training data): the robot's
    observation keys, the camera frame as "image" (camera resolution), and the sent actions.
    Dry runs are recorded unlabelled (no action reached the robot)."""

    def __init__(self, root: str | Path, robot: Robot, camera: Camera | None, fps: float, info: dict | None = None):
        spec = provided_spec(robot, camera)
        self.image_hw = tuple(camera.spec.shape[:2]) if camera is not None else None
        self.writer = DatasetWriter(root, observation=spec, action=robot.action_spec, fps=fps, robot=robot.name,
                                    task=getattr(robot, "task", "") or "", info=info or {})
        self.keys = list(spec.keys)
        self._reset()
        self.written = 0

    def _reset(self):
        self._obs: dict[str, list] = {k: [] for k in self.keys}
        self._actions: list[np.ndarray] = []
        self._labelled, self._seed = True, None

    def _append(self, obs, frame):
        for k in self.keys:
            if k == "image" and self.image_hw is not None:
                self._obs[k].append(resize_image(frame.image, self.image_hw) if frame is not None else self._obs[k][-1])
            else:
                self._obs[k].append(np.array(obs[k]))

    def on_episode_start(self, episode, seed):
        self._reset()
        self._seed = seed

    def on_step(self, obs, frame, action):
        self._append(obs, frame)
        if action is None:
            self._labelled = False
        else:
            self._actions.append(np.asarray(action, np.float32))

    def on_episode_end(self, obs, frame, info):
        n = len(self._obs[self.keys[0]]) if self.keys else 0
        if obs is not None and n:
            self._append(obs, frame)
            n += 1
        elif self._labelled and len(self._actions) == n and n:
            # No o_T after the last action (a fault): drop that action so actions stay between observations.
            self._actions.pop()
        if n < 2:
            log.warning("episode %s: only %d observation(s); not recorded", self._seed, n)
            return
        arrays = {k: np.stack(v) for k, v in self._obs.items()}  # (T, *shape)
        actions = np.stack(self._actions[: n - 1]) if self._labelled and self._actions else None
        info = {k: v for k, v in info.items() if k != "seed" and isinstance(v, (bool, int, float, str, np.generic))}
        self.writer.add_episode(arrays, actions, seed=self._seed, **info)
        self.written += 1
        self._reset()


# ----------------------------------------------------------------------------- stop requests


class _StopRequest:
    """First SIGINT/SIGTERM: finish the current tick and stop. Second SIGINT: KeyboardInterrupt now.
    Once cleanup (safe pose, recording, report) has begun, signals are logged and ignored."""

    def __init__(self):
        self.requested, self.reason, self.cleaning = False, "", False
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        if self.cleaning:  # going to the safe pose, saving the recording: do not break that half-way
            log.warning("%s ignored: stopping safely (safe pose, recording, report) - please wait", signal.Signals(signum).name)
            return
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.reason = True, f"interrupted ({signal.Signals(signum).name})"
        log.warning("%s: stopping after this tick (Ctrl-C again to abort at once)", signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _sleep_until(deadline: float, stop: _StopRequest) -> None:
    while not stop.requested:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


# ----------------------------------------------------------------------------- the loop


def run_loop(robot: Robot, backend: Backend, camera: Camera | None = None, hz: float = 5.0,
             steps: int | None = None, episodes: int | None = None, seed: int = 0,
             record: str | Path | None = None, safety: SafetyLayer | dict | None = None,
             telemetry: Telemetry | None = None, *, dry_run: bool = False, report: str | Path | None = None,
             subscribers: list[Subscriber] | None = None, report_extra: dict | None = None,
             disconnect: bool = True, on_episode=None) -> dict:
    """Run `backend`'s policy on `robot`. Episode i starts with robot.reset(seed + i) and ends at
    robot.episode_done(). With `episodes`: that many episodes, each capped at `steps` ticks if given.
    With `steps` alone: `steps` ticks in all, starting a new episode whenever one ends (so
    `clam-run --steps 200` really runs 200 ticks). With neither: one episode.

    safety: a SafetyLayer, or a dict of SafetyLayer.for_robot options (built after connect(), since
    some robots know their action spec only once connected); default SafetyLayer.for_robot(robot).
    record: dataset directory to append the episodes to. report: JSON file for the summary.
    dry_run: everything runs (camera, inference, safety, telemetry, recording unlabelled) but no
    action is sent and the robot is not sent to its safe pose. on_episode(i, info): called after
    each episode (progress bars). Returns the telemetry summary; re-raises faults after cleanup.
    """
    meta = backend.meta
    hz = float(hz)
    if hz < 0:
        raise ValueError("hz must be >= 0 (0 = as fast as possible)")
    total_mode = episodes is None and steps is not None  # `steps` counts ticks over all episodes
    n_episodes = 1 if episodes is None else int(episodes)
    telemetry = telemetry or Telemetry(hz)
    telemetry.hz = hz
    subs = list(subscribers or [])
    build = ObservationBuilder(meta.observation, meta.inputs)
    extra = {"robot": robot.name, "camera": camera.name if camera else None, "backend": backend.name,
             "dry_run": dry_run, "seed": seed, "record": str(record) if record else None} | (report_extra or {})
    if hz and meta.fps and abs(hz - meta.fps) > 0.01 * meta.fps:
        log.warning("running at %g Hz; the policy was trained on %g Hz data", hz, meta.fps)

    period = 1.0 / hz if hz else 0.0
    fault: BaseException | None = None
    episode_open = False
    ep_seed = seed
    overruns_logged = 0
    moved = False  # reset() or send_action() reached the robot: go_safe() on the way out
    with _StopRequest() as stop:
        try:
            # Connect (moves nothing), then check the specs before reset() or any action.
            for dev in (robot, camera):
                if dev is not None and not dev.is_connected:
                    dev.connect()
            check_setup(meta, robot, camera)
            if not isinstance(safety, SafetyLayer):
                safety = SafetyLayer.for_robot(robot, **(safety or {}))
            telemetry.safety = safety
            if record is not None:
                subs.insert(0, Recorder(record, robot, camera, fps=hz or meta.fps or robot.fps,
                                        info={"source": "clam-run", "bundle": report_extra.get("bundle") if report_extra else None,
                                              "backend": backend.name, "dry_run": dry_run}))
            length = f"{steps} ticks" if total_mode else f"{n_episodes} episode(s)" + (f" of <= {steps} steps" if steps else "")
            log.info("running %s on %s%s at %s, %s%s", backend.name, robot.name,
                     f" + camera {camera.name}" if camera else "", f"{hz:g} Hz" if hz else "max rate", length,
                     " [DRY RUN: nothing is sent]" if dry_run else "")
            warm = False
            for ep in itertools.count() if total_mode else range(n_episodes):
                if stop.requested or (total_mode and telemetry.ticks >= steps):
                    break
                limit = steps - telemetry.ticks if total_mode else steps
                ep_seed = seed + ep
                moved = True
                robot.reset(seed=ep_seed)
                safety.reset()
                for s in subs:
                    s.on_episode_start(ep, ep_seed)
                episode_open = True
                if not warm:  # lazy inference set-up must not cost the first tick its deadline
                    backend.infer({k: np.zeros(v.shape, v.dtype) for k, v in meta.observation.keys.items()})
                    warm = True
                t = 0
                deadline = time.perf_counter() + period
                while (limit is None or t < limit) and not stop.requested:
                    t0 = time.perf_counter()
                    frame = camera.async_read() if camera is not None else None
                    if frame is not None:
                        safety.check_frame(frame)
                    tc = time.perf_counter()
                    obs = robot.get_observation()
                    tr = time.perf_counter()
                    policy_obs = build(obs, frame)
                    t1 = time.perf_counter()
                    raw = backend.infer(policy_obs)
                    t2 = time.perf_counter()
                    safety.check_inference(t2 - t1)
                    action = safety(raw, robot)
                    ts = time.perf_counter()
                    if stop.requested:
                        break  # Ctrl-C arrived during inference: do not send
                    sent = None if dry_run else robot.send_action(action)
                    t3 = time.perf_counter()
                    age = time.monotonic() - frame.timestamp if frame is not None else None
                    if dry_run and (t < 5 or log.isEnabledFor(logging.DEBUG)):
                        log.info("dry run, tick %d: action %s (not sent)", t, np.array2string(action, precision=3))
                    for s in subs:
                        s.on_step(obs, frame, sent)
                    t += 1
                    missed = False
                    if period:
                        now = time.perf_counter()
                        if now > deadline:
                            missed, late = True, now - deadline
                            if overruns_logged < 5 or (telemetry.missed + 1) % 100 == 0:
                                log.warning("tick %d overran its %.1f ms budget by %.1f ms", telemetry.ticks,
                                            period * 1e3, (now - deadline) * 1e3)
                                overruns_logged += 1
                            deadline = now  # re-anchor: do not burst to catch up
                    telemetry.tick(t2 - t1, t3 - t0, age, missed, stages=(tc - t0, tr - tc, t1 - tr, ts - t2, t3 - ts))
                    if missed:
                        safety.check_overrun(late)
                    if robot.episode_done():
                        break
                    if period:
                        _sleep_until(deadline, stop)
                        deadline += period
                info = dict(robot.episode_info())
                if stop.requested:
                    info["interrupted"] = True
                _end_episode(robot, camera, subs, info, telemetry, ep, ep_seed)
                episode_open = False
                if on_episode is not None:
                    on_episode(ep, info)
            telemetry.stop_reason = stop.reason or "completed"
        except KeyboardInterrupt:
            telemetry.stop_reason = "interrupted (SIGINT)"
        except EOFError as e:  # a recording (recording:PATH camera) ran out of frames: a normal end
            telemetry.stop_reason = f"end of camera stream ({e})"
        except UserError as e:  # bad setup (SpecMismatch, a dataset that does not match): nothing ran
            fault = e
            telemetry.stop_reason = f"error: {e}"
        except BaseException as e:  # a fault: robot/camera error, StaleFrame, NaN streak, bug
            fault = e
            telemetry.stop_reason = f"fault: {type(e).__name__}: {e}"
            log.error("run stopped by a fault: %s: %s", type(e).__name__, e)
        finally:
            # Nothing more is sent from here on; further Ctrl-C is ignored until the robot is safe.
            stop.cleaning = True
            if episode_open:
                info = {"interrupted": True} if fault is None else {"fault": f"{type(fault).__name__}: {fault}"}
                try:
                    info = dict(robot.episode_info()) | info
                except Exception:  # noqa: BLE001 - the robot may be what failed
                    pass
                _end_episode(robot, camera, subs, info, telemetry, -1, ep_seed, final=fault is None)
            if moved and not dry_run and robot.is_connected:
                try:
                    robot.go_safe()
                except Exception as e:  # noqa: BLE001
                    log.error("go_safe failed: %s: %s", type(e).__name__, e)
            if disconnect:
                for dev in (camera, robot):
                    if dev is not None and dev.is_connected:
                        try:
                            dev.disconnect()
                        except Exception as e:  # noqa: BLE001
                            log.error("disconnecting %s failed: %s", dev.name, e)
            for s in subs:
                try:
                    s.close()
                except Exception as e:  # noqa: BLE001
                    log.error("closing %s failed: %s", type(s).__name__, e)
            if report is not None:
                try:
                    log.info("report written to %s", telemetry.write(report, extra=extra))
                except OSError as e:
                    log.error("could not write the report %s: %s", report, e)
    if fault is not None:
        raise fault
    return extra | telemetry.summary()


def _end_episode(robot, camera, subs, info, telemetry, ep, ep_seed, final: bool = True) -> None:
    """Read o_T (when the devices still answer), hand the episode to the subscribers, log the outcome."""
    obs = frame = None
    if final:
        try:
            obs = robot.get_observation()
            frame = camera.async_read() if camera is not None else None
        except Exception as e:  # noqa: BLE001 - o_T is a nicety; the episode is recorded without it
            log.warning("could not read the final observation: %s", e)
            obs = frame = None
    info = {"seed": ep_seed} | info
    telemetry.episode(info)
    for s in subs:
        try:
            s.on_episode_end(obs, frame, info)
        except Exception as e:  # noqa: BLE001 - a recording problem must not hide the run's outcome
            log.error("%s could not finish the episode: %s: %s", type(s).__name__, type(e).__name__, e)
    log.info("episode %d (seed %d): %s", len(telemetry.episodes), ep_seed,
             ", ".join(f"{k} {v}" for k, v in info.items() if k != "seed") or "done")
