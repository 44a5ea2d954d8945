"""dm_control as a Robot: determinism, specs, rendering, recording, and experts that really solve their tasks."""

import numpy as np
import pytest

pytest.importorskip("dm_control")

from clamkit.dataset import Dataset, DatasetWriter  # noqa: E402
from clamkit.errors import UserError  # noqa: E402
from clamkit.robot.base import DeviceNotConnectedError  # noqa: E402
from clamkit.record.dmc import expert_policy, play_policy  # noqa: E402
from clamkit.record.policy import CallablePolicy  # noqa: E402
from clamkit.robot.dmc import TASKS, DMCRobot  # noqa: E402
from clamkit.record.episodes import record_episodes  # noqa: E402
from clamkit.robot.sim_camera import SimCamera  # noqa: E402
from clamkit.specs import ObservationSpec  # noqa: E402

# The layouts the experts are written against: the observation dict in sorted key order.
LAYOUTS = {
    "reacher-easy": {"position": slice(0, 2), "to_target": slice(2, 4), "velocity": slice(4, 6)},
    "point_mass-easy": {"position": slice(0, 2), "velocity": slice(2, 4)},
    "cartpole-swingup": {"position": slice(0, 3), "velocity": slice(3, 5)},
    "pendulum-swingup": {"orientation": slice(0, 2), "velocity": slice(2, 3)},
}


def rollout(robot, policy, seed):
    policy.reset(seed)
    obs = robot.reset(seed=seed)
    while not robot.episode_done():
        robot.send_action(policy(obs))
        obs = robot.get_observation()
    return robot.episode_info()["return"]


@pytest.mark.parametrize("task", TASKS)
def test_expert_solves_task(task):
    with DMCRobot(task) as robot:
        returns = [rollout(robot, expert_policy(task), seed) for seed in (0, 1)]
        assert robot._steps == 1000  # the suite's own time limit ended the episode
    assert np.mean(returns) >= 700, f"{task}: expert returns {returns}"


@pytest.mark.parametrize("task", TASKS)
def test_reset_is_deterministic_per_seed(task):
    from dm_control import suite

    with DMCRobot(task) as robot:
        a = robot.reset(seed=3)["state"]
        robot.send_action(np.ones(robot.action_spec.dim))
        b = robot.reset(seed=4)["state"]
        c = robot.reset(seed=3)["state"]
    assert np.array_equal(a, c)
    assert not np.array_equal(a, b)
    # Re-seeding in place draws the same episode as loading the env afresh with that seed.
    domain, name = task.split("-", 1)
    obs = suite.load(domain, name, task_kwargs={"random": 3}).reset().observation
    assert np.array_equal(a, np.concatenate([np.ravel(obs[k]) for k in sorted(obs)]).astype(np.float32))


@pytest.mark.parametrize("task", TASKS)
def test_specs_match_what_the_robot_does(task):
    with DMCRobot(task) as robot:
        assert robot.observation_layout == LAYOUTS[task]
        obs = robot.reset(seed=0)
        spec = robot.observation_spec.keys["state"]
        assert set(obs) == {"state"} and obs["state"].shape == spec.shape and obs["state"].dtype == np.dtype(spec.dtype)
        act = robot.action_spec
        assert act.semantics == f"dmc:{task}"
        sent = robot.send_action(np.full(act.dim, 5.0))
        assert sent.shape == (act.dim,) and np.allclose(sent, act.high)  # clipped to the bounds
        assert expert_policy(task)(robot.get_observation()).shape == (act.dim,)
        assert robot.fps > 0


def test_specs_need_a_connected_robot():
    robot = DMCRobot("reacher-easy")
    assert robot.name == "dmc:reacher-easy"
    with pytest.raises(DeviceNotConnectedError):
        robot.observation_spec
    with pytest.raises(DeviceNotConnectedError):
        robot.fps


def test_max_steps_ends_episode_and_stops_stepping():
    with DMCRobot("point_mass-easy", max_steps=10) as robot:
        robot.reset(seed=0)
        for _ in range(10):
            robot.send_action(np.array([1.0, 1.0]))
        assert robot.episode_done()
        before = robot.get_observation()["state"]
        robot.send_action(np.array([1.0, 1.0]))  # past the end: ignored, no hidden new episode
        assert np.array_equal(before, robot.get_observation()["state"])


def test_render_is_rgb_uint8():
    with DMCRobot("cartpole-swingup") as robot:
        robot.reset(seed=0)
        img = robot.render(48, 32)
    assert img.shape == (32, 48, 3) and img.dtype == np.uint8 and img.std() > 0


def test_record_play_into_dataset(tmp_path):
    with DMCRobot("reacher-easy") as robot, SimCamera(robot, 32, 32) as camera:
        obs_spec = ObservationSpec(robot.observation_spec.keys | {"image": camera.spec})
        writer = DatasetWriter(tmp_path / "ds", observation=obs_spec, action=robot.action_spec, fps=robot.fps,
                               robot=robot.name, task="reacher-easy")
        summary = record_episodes(robot, play_policy("reacher-easy"), writer, 2, max_steps=40, camera=camera,
                                  progress=False)
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 2 and summary["episodes_total"] == 2 and "mean_return" in summary
    assert ds.fps == 50.0 and ds.action == robot.action_spec
    for i, ep in enumerate(ds.episodes):
        assert ep["labelled"] and ep["length"] == 41 and isinstance(ep["return"], float) and ep["seed"] == i
        arrays = ds.episode(i)
        assert arrays["image"].shape == (41, 32, 32, 3) and arrays["action"].shape == (40, 2)
        assert np.abs(arrays["action"]).max() <= 1.0
    assert not np.array_equal(ds.episode(0)["action"], ds.episode(1)["action"])  # play is seeded per episode


def test_play_is_seeded_and_not_expert():
    policy = play_policy("pendulum-swingup")
    obs = {"state": np.array([-1.0, 0.0, 0.0], dtype=np.float32)}
    policy.reset(5)
    a = [policy(obs) for _ in range(30)]
    policy.reset(5)
    b = [policy(obs) for _ in range(30)]
    assert np.array_equal(a, b)
    with DMCRobot("pendulum-swingup", max_steps=300) as robot:
        assert rollout(robot, play_policy("pendulum-swingup"), seed=0) < 100


def test_any_callable_can_be_recorded(tmp_path):
    seeds = []
    policy = CallablePolicy(lambda obs: -obs["state"][:2], reset_fn=seeds.append)
    with DMCRobot("point_mass-easy") as robot:
        writer = DatasetWriter(tmp_path / "ds", observation=robot.observation_spec, action=robot.action_spec,
                               fps=robot.fps, robot=robot.name)
        record_episodes(robot, policy, writer, 2, seed=10, max_steps=20, progress=False)
    assert seeds == [10, 11] and Dataset(tmp_path / "ds").summary()["labelled"] == 2


@pytest.mark.parametrize("task", ["reacher-nope", "nodomain-easy"])
def test_unknown_task_is_a_user_error(task):
    with pytest.raises(UserError, match="reacher-easy"):
        DMCRobot(task).connect()


def test_malformed_name_and_missing_expert_are_user_errors():
    with pytest.raises(UserError, match="DOMAIN-TASK"):
        DMCRobot("reacher")
    with pytest.raises(UserError, match="no scripted expert"):
        expert_policy("walker-walk")
    with pytest.raises(UserError, match="unknown dm_control task"):
        play_policy("walker-nope")


def test_play_works_for_tasks_without_an_expert():
    policy = play_policy("walker-walk")  # bounds read from the environment
    policy.reset(0)
    with DMCRobot("walker-walk", max_steps=20) as robot:
        a = policy(robot.reset(seed=0))
        assert a.shape == (robot.action_spec.dim,)
        robot.send_action(a)
