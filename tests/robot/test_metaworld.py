"""MetaWorld recording through the real clam-record CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("metaworld")

from clamkit.dataset import Dataset  # noqa: E402
from clamkit.robot.metaworld import MetaWorldRobot  # noqa: E402
from clamkit.record.cli import main  # noqa: E402


def _record(*args):
    r = CliRunner().invoke(main, ["metaworld", "--quiet", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.output.strip().splitlines()[-1])


def test_expert_recording_succeeds(tmp_path):
    s = _record("--task", "reach-v3", "--episodes", "10", "--policy", "expert", "--out", str(tmp_path / "e"))
    assert s["success_rate"] >= 0.9 and s["episodes_recorded"] == 10
    ds = Dataset(tmp_path / "e")
    assert len(ds) == 10 and all(ds.is_labelled(i) for i in range(10))
    assert ds.episode(0)["state"].shape == (201, 39) and ds.episode(0)["action"].shape == (200, 4)
    # Seeds differ per episode: goals differ.
    assert not np.allclose(ds.episode(0)["state"][0, 36:39], ds.episode(1)["state"][0, 36:39])
    # Re-running tops the dataset up instead of starting over.
    s2 = _record("--task", "reach-v3", "--episodes", "11", "--out", str(tmp_path / "e"))
    assert s2["episodes_recorded"] == 1 and len(Dataset(tmp_path / "e")) == 11


def test_play_is_labelled_and_not_expert(tmp_path):
    s = _record("--task", "reach-v3", "--episodes", "4", "--policy", "play", "--max-steps", "100", "--out", str(tmp_path / "p"))
    ds = Dataset(tmp_path / "p")
    a = np.concatenate([ds.episode(i)["action"] for i in range(len(ds))])
    assert a.std(0).min() > 0.3  # diverse actions on every axis, gripper included
    assert s["success_rate"] < 0.9


def test_unlabelled_recording(tmp_path):
    _record("--episodes", "2", "--max-steps", "20", "--no-actions", "--out", str(tmp_path / "u"))
    ds = Dataset(tmp_path / "u")
    assert not ds.is_labelled(0) and "action" not in ds.episode(0)


def test_frames_are_64x64_uint8_and_upright(tmp_path):
    _record("--episodes", "1", "--max-steps", "5", "--image-size", "64", "--out", str(tmp_path / "i"))
    img = Dataset(tmp_path / "i").episode(0)["image"]
    assert img.shape == (6, 64, 64, 3) and img.dtype == np.uint8

    # Upright: raising the (red) Sawyer arm moves its pixels up the image (smaller row index).
    def red_rows(dz):
        robot.reset(seed=0)
        for _ in range(40):
            robot.send_action(np.array([0, 0, dz, 0]))
        im = robot.render(64, 64).astype(int)
        return np.nonzero((im[..., 0] > 120) & (im[..., 1] < 70) & (im[..., 2] < 70))[0].mean()

    with MetaWorldRobot("reach-v3") as robot:
        assert red_rows(+1.0) < red_rows(-1.0) - 2


def test_unknown_task_is_one_line_error(tmp_path):
    r = CliRunner().invoke(main, ["metaworld", "--task", "nope-v3", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "nope-v3" in r.output and "Traceback" not in r.output


def test_every_v3_task_has_an_expert(tmp_path):
    """All 50 MetaWorld v3 tasks record with their scripted expert (peg-insert-side-v3's policy class is
    SawyerPegInsertionSideV3Policy: the name cannot be derived from the task's, MetaWorld's own map is used)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    tasks = sorted(ALL_V3_ENVIRONMENTS)
    assert len(tasks) == 50
    for task in tasks:
        s = _record("--task", task, "--episodes", "1", "--max-steps", "3", "--policy", "expert", "--out", str(tmp_path / task))
        assert s["steps"] == 3, task


def test_noisy_expert_spans_skill_levels(tmp_path):
    """--policy noisy-expert draws a random-action probability per episode from --noise-range and stores it;
    a pool spanning 0..1 has both successes and failures, a low-return range mostly failures."""
    pool = _record("--task", "reach-v3", "--episodes", "12", "--policy", "noisy-expert", "--noise-range", "0", "1",
                   "--no-actions", "--out", str(tmp_path / "pool"))
    low = _record("--task", "reach-v3", "--episodes", "6", "--policy", "noisy-expert", "--noise-range", "0.9", "1",
                  "--out", str(tmp_path / "low"))
    ps = [e["random_prob"] for e in Dataset(tmp_path / "pool").episodes]
    assert min(ps) < 0.3 and max(ps) > 0.7 and all(0 <= p <= 1 for p in ps)
    assert all(0.9 <= e["random_prob"] <= 1 for e in Dataset(tmp_path / "low").episodes)
    assert 0 < pool["success_rate"] < 1 and low["success_rate"] < pool["success_rate"]
    r = CliRunner().invoke(main, ["metaworld", "--policy", "noisy-expert", "--noise-range", "0.8", "0.2",
                                  "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "--noise-range" in r.output
