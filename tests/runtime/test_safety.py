"""The safety layer on its own, and inside the loop (NaN holds, clipping, rate cap, workspace, stale frames)."""

import json

import numpy as np
import pytest

from clamkit.robot.fake import FakeCamera, FakeRobot
from clamkit.runtime.backends import make_backend
from clamkit.runtime.loop import LoopOptions, run_loop
from clamkit.runtime.safety import NonFiniteActions, SafetyLayer, StaleFrame, delta_mask
from clamkit.runtime.subscribers import Recorder
from clamkit.robot.base import Frame
from clamkit.specs import ActionSpec

DELTA = ActionSpec(3, (-1,) * 3, (1,) * 3, "fake:delta_pos")
EE = ActionSpec(7, (-0.05,) * 6 + (0,), (0.05,) * 6 + (1,), "ee_delta_xyz_rpy+gripper")
ABS = ActionSpec(2, (-1,) * 2, (1,) * 2, "joint_pos")


def test_delta_mask_semantics():
    assert delta_mask("ee_delta_xyz_rpy+gripper", 7).tolist() == [True] * 6 + [False]
    assert delta_mask("metaworld:xyz+gripper", 4).tolist() == [True, True, True, False]
    assert delta_mask("dmc:reacher-easy", 2).all()
    assert not delta_mask("joint_pos", 3).any()


def test_nan_holds_zero_for_delta_actions_and_counts():
    s = SafetyLayer(DELTA)
    s(np.array([0.5, 0.5, 0.5]))
    out = s(np.array([np.nan, 0.2, np.inf]))
    assert out.tolist() == [0, 0, 0]
    assert s.counters.nonfinite == 1


def test_nan_holds_previous_gripper_for_ee_actions():
    s = SafetyLayer(EE)
    s(np.array([0.01, 0, 0, 0, 0, 0, 0.8]))
    out = s(np.full(7, np.nan))
    np.testing.assert_allclose(out, [0, 0, 0, 0, 0, 0, 0.8], atol=1e-7)


def test_nan_on_first_tick_of_absolute_actions_is_a_fault():
    s = SafetyLayer(ABS)
    with pytest.raises(NonFiniteActions):
        s(np.array([np.nan, 0.0]))


def test_nan_streak_is_a_fault():
    s = SafetyLayer(DELTA, max_nonfinite_streak=3)
    for _ in range(3):
        s(np.full(3, np.nan))
    with pytest.raises(NonFiniteActions, match="4 ticks"):
        s(np.full(3, np.nan))
    s.reset()
    s(np.full(3, np.nan))  # a new episode starts a new streak


def test_clip_to_bounds_counts():
    s = SafetyLayer(DELTA)
    assert s(np.array([2.0, -3.0, 0.1])).tolist() == pytest.approx([1.0, -1.0, 0.1])
    s(np.array([0.1, 0.1, 0.1]))
    assert s.counters.clipped == 1


def test_per_tick_change_cap():
    s = SafetyLayer(DELTA, max_delta=0.1)
    s(np.zeros(3))
    out = s(np.array([1.0, -1.0, 0.05]))
    np.testing.assert_allclose(out, [0.1, -0.1, 0.05], atol=1e-6)
    out = s(np.array([1.0, -1.0, 0.05]))
    np.testing.assert_allclose(out, [0.2, -0.2, 0.05], atol=1e-6)
    assert s.counters.rate_limited == 2
    s.reset()  # no previous command: the first action of an episode is not capped
    np.testing.assert_allclose(s(np.array([1.0, 0, 0])), [1, 0, 0])


def test_workspace_clamps_the_ee_target_into_the_box():
    robot = FakeRobot(semantics="ee_delta_xyz_rpy+gripper", workspace=((-0.2, -0.2, 0.0), (0.2, 0.2, 0.3)), gain=0.5)
    robot.connect()
    robot.reset(seed=0)
    robot.pos = np.array([0.19, 0.0, 0.01])
    s = SafetyLayer.for_robot(robot)
    assert s.ee_delta_scale == 0.5
    out = s(np.array([0.1, 0.02, -0.1, 0, 0, 0, 1.0]), robot)  # target (0.24, 0.01, -0.04)
    np.testing.assert_allclose(robot.pos + 0.5 * out[:3], [0.2, 0.01, 0.0], atol=1e-6)  # x and z stopped at the walls
    assert out[6] == 1.0 and s.counters.workspace_clamped == 1
    s(np.array([0.0, 0.01, 0.0, 0, 0, 0, 1.0]), robot)  # inside: untouched
    assert s.counters.workspace_clamped == 1


def test_stale_frame_raises():
    s = SafetyLayer(DELTA, max_frame_age=0.1)
    assert s.check_frame(Frame(np.zeros((2, 2, 3), np.uint8), timestamp=10.0), now=10.05) == pytest.approx(0.05)
    with pytest.raises(StaleFrame):
        s.check_frame(Frame(np.zeros((2, 2, 3), np.uint8), timestamp=10.0), now=10.2)
    assert s.counters.stale_frames == 1


# ----------------------------------------------------------------------------- in the loop


def test_nan_policy_holds_in_the_loop(bundles):
    robot = FakeRobot(dim=2, max_steps=4)
    with make_backend(bundles("nan")) as be:
        summary = run_loop(robot, be, None, LoopOptions(hz=0, episodes=1))
    assert summary["safety"]["nonfinite"] == 4
    assert all((a == 0).all() for a in robot.sent) and len(robot.sent) == 4


def test_workspace_clamp_in_the_loop(bundles, tmp_path):
    # The policy pulls towards the goal; the box is narrower than the goals, so the target gets clamped.
    robot = FakeRobot(semantics="ee_delta_xyz_rpy+gripper", workspace=((-0.05,) * 3, (0.05,) * 3), max_steps=30)
    with make_backend(bundles("ee")) as be:
        summary = run_loop(robot, be, None, LoopOptions(hz=0, report=tmp_path / "r.json"))
    assert summary["safety"]["workspace_clamped"] > 0
    assert (np.abs(robot.pos) <= 0.05 + 1e-6).all()
    assert json.loads((tmp_path / "r.json").read_text())["safety"]["workspace_clamped"] > 0


def test_stale_camera_stops_the_run(bundles, tmp_path):
    robot = FakeRobot(dim=2, max_steps=1000)
    camera = FakeCamera(32, 32, stale_after=3)
    with make_backend(bundles("image")) as be:
        with pytest.raises(StaleFrame):
            run_loop(robot, be, camera, LoopOptions(hz=20, safety={"max_frame_age": 0.1}, report=tmp_path / "r.json"), subscribers=[Recorder(tmp_path / "rec")])
    assert 3 <= len(robot.sent) < 20  # stopped within a few ticks of the frames going stale
    assert robot.go_safe_calls == 1 and not robot.is_connected and not camera.is_connected
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["stop_reason"].startswith("fault: StaleFrame") and rep["safety"]["stale_frames"] == 1


def test_workspace_clamp_on_widowx_sim(bundles):
    """A policy that keeps pushing up and out: the safety layer holds the MuJoCo WidowX's EE target in its box."""
    pytest.importorskip("mujoco")
    from clamkit.robot.widowx_sim import WidowXSimRobot
    from clamkit.runtime.subscribers import Subscriber

    robot = WidowXSimRobot(task="reach-block", max_steps=15)
    poses = []

    class Probe(Subscriber):
        def on_step(self, obs, frame, action):
            poses.append(robot.ee_pose()[0])  # after the action was applied

    with make_backend(bundles("const", action=(0.05, 0.0, 0.05, 0, 0, 0, 1))) as be:
        summary = run_loop(robot, be, None, LoopOptions(hz=0), subscribers=[Probe()])
    assert summary["safety"]["workspace_clamped"] > 0 and summary["ticks"] == 15
    assert all(robot.workspace.contains(p, tol=0.01) for p in poses)
    assert poses[-1][0] > poses[0][0] + 0.03  # it did move out towards the wall
