"""Datasets for the trainer tests: a synthetic linear system, synthetic images, a small MetaWorld recording."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from clamkit.dataset import DatasetWriter  # noqa: E402
from clamkit.specs import ArraySpec, ObservationSpec  # noqa: E402

from synthetic import LIN_ACTION, linear_system, write_linear  # noqa: E402,F401


def write_images(root, kind: str, episodes: int, T: int = 30, size: int = 64, seed: int = 0, labelled: bool = True):
    """A dot on a dark background moved by a 2-D velocity action (expert: towards the centre; play: random)."""
    w = DatasetWriter(root, observation=ObservationSpec({"image": ArraySpec((size, size, 3), "uint8")}),
                      action=LIN_ACTION, fps=10, robot="dot", task="dot")
    rng = np.random.default_rng(seed + (0 if kind == "expert" else 1000))
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(episodes):
        p = rng.uniform(8, size - 8, 2)
        frames, acts = [], []
        for t in range(T):
            img = np.zeros((size, size, 3), np.uint8)
            img[..., 0] = 255 * np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / 18.0)
            img[..., 2] = 40
            frames.append(img)
            if t == T - 1:
                break
            a = np.clip((size / 2 - p) / 8, -1, 1) if kind == "expert" else rng.uniform(-1, 1, 2)
            p = np.clip(p + 4 * a, 2, size - 2)
            acts.append(a)
        w.add_episode({"image": np.stack(frames)}, np.array(acts, np.float32) if labelled else None)
    return str(root)


@pytest.fixture(scope="session")
def linear_data(tmp_path_factory):
    """(unlabelled expert dir with hidden actions, labelled play dir)."""
    d = tmp_path_factory.mktemp("linear")
    return write_linear(d / "expert", "expert", 20), write_linear(d / "play", "play", 10)


@pytest.fixture(scope="session")
def image_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    return write_images(d / "expert", "expert", 6), write_images(d / "play", "play", 4)


def record_reach(d: Path, experts: int, plays: int, steps: int, play_seed: int) -> tuple[str, str]:
    """Expert (actions recorded, hidden from CLAM) and noisy play episodes of reach-v3 under d/."""
    pytest.importorskip("metaworld")
    from clamkit.record.metaworld import MetaWorldExpert, MetaWorldPlay
    from clamkit.robot.metaworld import ACTION_SPEC, MetaWorldRobot
    from clamkit.record.episodes import record_episodes

    out = []
    for name, policy, n, seed in [("expert", MetaWorldExpert("reach-v3"), experts, 0),
                                  ("play", MetaWorldPlay("reach-v3"), plays, play_seed)]:
        with MetaWorldRobot("reach-v3", max_steps=steps) as robot:
            w = DatasetWriter(d / name, observation=robot.observation_spec, action=ACTION_SPEC, fps=robot.fps,
                              robot=robot.name, task="reach-v3")
            record_episodes(robot, policy, w, n, seed=seed, max_steps=steps, progress=False)
        out.append(str(d / name))
    return out[0], out[1]


@pytest.fixture(scope="session")
def metaworld_data(tmp_path_factory):
    """6 expert + 4 play episodes of 100 steps of reach-v3."""
    return record_reach(tmp_path_factory.mktemp("metaworld"), 6, 4, 100, play_seed=100)


ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
SMOKE_IMAGE = str(ROOT / "configs" / "smoke-image.yaml")


def clam_train(unlabelled, labelled, out, *sets, config=SMOKE, resume=False, check=True, pool=()):
    """Run the clam-train CLI in-process (click's CliRunner); returns the click Result."""
    from click.testing import CliRunner

    from clamkit.pipeline import train_main as main

    args = ["--config", config, "--unlabelled", unlabelled, "--labelled", labelled, "--out", str(out),
            "--set", "run.progress=false"]
    for p in pool:
        args += ["--pool", p]
    for s in sets:
        args += ["--set", s]
    if resume:
        args.append("--resume")
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    if check:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="session")
def helpers():
    """The helpers above for test modules (conftest is not importable under --import-mode=importlib)."""
    import types

    return types.SimpleNamespace(clam_train=clam_train, write_linear=write_linear, write_images=write_images,
                                 SMOKE=SMOKE, SMOKE_IMAGE=SMOKE_IMAGE)


@pytest.fixture(scope="session")
def metaworld_play(tmp_path_factory):
    """20 noisy play episodes of 200 steps of reach-v3 (labelled) and 4 expert episodes."""
    return record_reach(tmp_path_factory.mktemp("metaworld-play"), 4, 20, 200, play_seed=1000)
