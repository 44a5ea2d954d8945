"""Record episodes from any Robot (+ optional Camera) with any Policy into a clamkit dataset."""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from clamkit.dataset import DatasetWriter
from clamkit.outcomes import progress_postfix, summarize
from clamkit.record.policy import Policy
from clamkit.robot.base import Camera, Robot


def record_episodes(robot: Robot, policy: Policy, writer: DatasetWriter, episodes: int, *, seed: int = 0,
                    max_steps: int = 200, camera: Camera | None = None, labelled: bool = True,
                    progress: bool = True, end_after_success: int | None = None) -> dict:
    """Roll `policy` on `robot` for `episodes` episodes and append each to `writer`. end_after_success=K ends an
    episode K steps after the task first succeeds (the robot's episode_info()["success"]), as demonstrations
    stop once the task is done; None records every episode to max_steps (or the robot's own end).

    Episode i is seeded with seed + (index it gets in the dataset), so an interrupted recording
    re-run with the same arguments continues with the next seeds. Returns a summary dict.
    """
    start = len(writer)
    t0, steps, infos = time.perf_counter(), 0, []
    bar = tqdm(range(start, episodes), desc=f"record {robot.name}", unit="ep", disable=not progress,
               initial=0, total=max(episodes - start, 0))
    for i in bar:
        ep_seed = seed + i
        policy.reset(ep_seed)
        obs = robot.reset(seed=ep_seed)
        frames: dict[str, list] = {}
        actions, last_step = [], None  # last_step: end_after_success steps after the first success
        for t in range(max_steps):
            _append(frames, obs, camera)
            a = np.asarray(policy(obs), dtype=np.float32)
            actions.append(robot.send_action(a))
            obs = robot.get_observation()
            if last_step is None and end_after_success is not None and robot.episode_info().get("success"):
                last_step = t + end_after_success
            if robot.episode_done() or t == last_step:
                break
        _append(frames, obs, camera)
        info = robot.episode_info() | policy.episode_info()
        writer.add_episode({k: np.stack(v) for k, v in frames.items()}, np.stack(actions) if labelled else None,
                           seed=ep_seed, **info)
        steps += len(actions)
        infos.append(info)
        bar.set_postfix(progress_postfix(infos))
    return {"episodes_recorded": max(episodes - start, 0), "episodes_total": len(writer), "steps": steps,
            "seconds": round(time.perf_counter() - t0, 1)} | summarize(infos)


def _append(frames: dict, obs: dict, camera: Camera | None) -> None:
    for k, v in obs.items():
        frames.setdefault(k, []).append(np.asarray(v))
    if camera is not None:
        frames.setdefault("image", []).append(camera.read().image)
