"""Sim-in-the-loop evaluation: a bundle's success rate (or mean return) over seeded episodes, run
through exactly the control loop the robot uses (run_loop at hz=0). `clam-eval` and the trainer's
periodic evaluation both call `evaluate`.

    from clamkit.runtime.evaluate import evaluate
    r = evaluate("bundles/reach", "metaworld:reach-v3", episodes=40, seed=1000)
    r["success_rate"], r["latency_ms"]["infer"]["p99"]
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from clamkit.bundle import read_meta
from clamkit.errors import UserError, require
from clamkit.outcomes import SIM_KINDS, progress_postfix
from clamkit.robot.base import Frame, Robot
from clamkit.runtime.backends import make_backend
from clamkit.runtime.loop import LoopOptions, run_loop
from clamkit.runtime.subscribers import Subscriber
from clamkit.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


class VideoRecorder(Subscriber):
    """One animated GIF per episode (the camera frames the policy saw, or the simulator's render
    for state policies): DIR/episode_003_seed_1003_success.gif. Needs pillow."""

    def __init__(self, out: str | Path, robot: Robot, size: tuple[int, int] = (128, 128), fps: float = 20.0):
        self.Image = require("PIL.Image", hint="pip install pillow")
        self.out, self.robot, self.size, self.fps = Path(out), robot, size, fps
        self.out.mkdir(parents=True, exist_ok=True)
        self._frames: list[np.ndarray] = []
        self._ep, self._seed = 0, 0

    def on_episode_start(self, episode, seed):
        self._frames, self._ep, self._seed = [], episode, seed

    def _grab(self, frame: Frame | None):
        h, w = self.size
        self._frames.append(frame.image if frame is not None else self.robot.render(w, h))

    def on_step(self, obs, frame, action):
        self._grab(frame)

    def on_episode_end(self, obs, frame, info):
        if obs is not None:
            self._grab(frame)
        if not self._frames:
            return
        tag = "success" if info.get("success") else ("fail" if "success" in info else f"return_{info.get('return', 0):.0f}")
        path = self.out / f"episode_{self._ep:03d}_seed_{self._seed}_{tag}.gif"
        imgs = [self.Image.fromarray(f) for f in self._frames]
        imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(1000 / self.fps), loop=0)
        log.info("video: %s (%d frames)", path, len(imgs))
        self._frames = []


class _Outcomes(Subscriber):
    """Collects each episode's outcome and shows the running success rate / return on a progress bar."""

    def __init__(self, bar):
        self.bar, self.outcomes = bar, []

    def on_episode_end(self, obs, frame, info):
        self.outcomes.append(info)
        if self.bar is not None:
            self.bar.set_postfix(progress_postfix(self.outcomes))
            self.bar.update(1)


def evaluate(bundle_dir: str | Path, env: str, episodes: int = 40, seed: int = 0, camera: str | None = None, *,
             backend: str = "ort", max_steps: int | None = None, video: str | Path | None = None,
             json_path: str | Path | None = None, robot_opts: dict | None = None, progress: bool = False,
             max_delta: float | None = None) -> dict:
    """Run the bundle on `env` ("metaworld:TASK", "dmc:DOMAIN-TASK", "widowx-sim:TASK", "fake") for
    `episodes` episodes seeded seed, seed+1, ...; returns the run summary with "success_rate"
    (success at any step; an episode an EpisodeFault ended counts as failed) and/or "mean_return",
    per-episode outcomes and latency p50/p99/max.
    An image bundle without `camera` gets the simulator's "sim" camera at the bundle's resolution."""
    from clamkit.robot.factory import make_camera, make_robot

    if env.partition(":")[0] not in SIM_KINDS:
        raise UserError(f"clam-eval runs simulations only: --env metaworld:TASK, dmc:DOMAIN-TASK, widowx-sim:TASK or fake (got '{env}')")
    if episodes < 1:
        raise UserError("--episodes must be at least 1")
    meta = read_meta(bundle_dir)
    if camera is None and "image" in meta.observation.keys:
        camera = "sim"
        log.info("image policy: using the simulator's 'sim' camera")
    h, w = meta.observation.keys["image"].shape[:2] if "image" in meta.observation.keys else (64, 64)
    robot = make_robot(env, **(robot_opts or {}))
    cam = make_camera(camera, robot, width=w, height=h)
    subs = [VideoRecorder(video, robot, size=(max(h, 128), max(w, 128)))] if video else []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes, desc=f"eval {env}", unit="ep")
    outcomes = _Outcomes(bar)
    extra = {"bundle": str(bundle_dir), "env": env, "episodes_requested": episodes, "algo": meta.algo}
    try:
        with make_backend(bundle_dir, backend, meta=meta) as be:
            safety = {"max_delta": max_delta, "max_frame_age": None}  # sim frames are never stale
            # An EpisodeFault (widowx-sim's effort guard) fails its episode; the evaluation goes on.
            opts = LoopOptions(hz=0, steps=max_steps, episodes=episodes, seed=seed, safety=safety, report=json_path,
                               report_extra=extra, continue_after_fault=True)
            result = run_loop(robot, be, cam, opts, subscribers=[*subs, outcomes], telemetry=Telemetry(0))
    finally:
        if bar is not None:
            bar.close()
    return result
