"""The real-WidowX backend against a fake Interbotix API (ROS 1 and ROS 2 layouts) that records every call.

Nothing here touches hardware: the fake stands in for interbotix_xs_modules (and rclpy/rospy) in
sys.modules, with the real API's names, signatures and limit checks (see fake_interbotix.py).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from clamkit.errors import MissingDependency, UserError
from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.widowx import WidowXFault, WidowXRobot

_spec = importlib.util.spec_from_file_location("fake_interbotix", Path(__file__).with_name("fake_interbotix.py"))
fake = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fake_interbotix", fake)
_spec.loader.exec_module(fake)

ROS = ["ros2", "ros1"]


def connected(monkeypatch, ros="ros2", opts=None, **config):
    calls = fake.install(monkeypatch, ros=ros, opts=opts)
    robot = WidowXRobot(**config)
    robot.connect()
    return robot, calls


def arm_commands(calls, blocking=False):
    return [np.array(c[1][0]) for c in calls.of("arm.set_joint_positions") if c[2]["blocking"] is blocking]


# ----------------------------------------------------------------------------- connect


@pytest.mark.parametrize("ros", ROS)
def test_connect_uses_the_right_api_and_keeps_ctrl_c_for_the_runtime(monkeypatch, ros):
    robot, calls = connected(monkeypatch, ros)
    assert robot.is_connected and robot._ros == ros
    ctor = calls.of("InterbotixManipulatorXS")[0]
    assert ctor[1] == ("wx250s",) and ctor[2]["group_name"] == "arm" and ctor[2]["gripper_name"] == "gripper"
    if ros == "ros2":
        # rclpy initialised by us without its SIGINT handler, before Interbotix; robot_startup after construction.
        assert calls.names()[:3] == ["rclpy.init", "InterbotixManipulatorXS", "robot_startup"]
        assert calls.of("rclpy.init")[0][2]["signal_handler_options"] == "NO"
    else:
        assert calls.names()[:2] == ["rospy.init_node", "InterbotixManipulatorXS"]
        assert calls.of("rospy.init_node")[0][2]["disable_signals"] is True
        assert ctor[2]["init_node"] is False
    assert robot.name == "widowx" and robot.fps == 5.0
    assert robot.action_spec == wx.ACTION_SPEC


def test_observation_matches_the_simulator(monkeypatch):
    from clamkit.robot.widowx_sim import WidowXSimRobot

    robot, _ = connected(monkeypatch)
    assert robot.observation_spec == WidowXSimRobot().observation_spec == wx.OBSERVATION_SPEC
    obs = robot.get_observation()
    assert set(obs) == {"state"} and obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    np.testing.assert_allclose(obs["state"], wx.make_state(fake.SLEEP, 1.0), atol=1e-6)  # starts asleep, open


def test_missing_interbotix_is_one_line_naming_the_installer(monkeypatch):
    for name in ("interbotix_xs_modules", "interbotix_xs_modules.xs_robot", "interbotix_xs_modules.xs_robot.arm",
                 "interbotix_xs_modules.arm"):
        monkeypatch.setitem(sys.modules, name, None)
    robot = WidowXRobot()
    with pytest.raises(MissingDependency) as e:
        robot.connect()
    msg = str(e.value)
    assert "\n" not in msg and "xsarm_amd64_install.sh" in msg and "interbotix_xs_modules" in msg
    assert not robot.is_connected


class _BrokenDependency(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import interbotix_xs_modules.xs_robot.arm` fail inside, as when interbotix_xs_msgs is not sourced."""

    def find_spec(self, name, path=None, target=None):
        if name == "interbotix_xs_modules.xs_robot.arm":
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ModuleNotFoundError("No module named 'interbotix_xs_msgs'", name="interbotix_xs_msgs")


def test_unsourced_ros_workspace_names_the_missing_module(monkeypatch):
    fake.install(monkeypatch, ros="ros2")
    monkeypatch.delitem(sys.modules, "interbotix_xs_modules.xs_robot.arm")
    monkeypatch.setattr(sys, "meta_path", [_BrokenDependency(), *sys.meta_path])
    with pytest.raises(MissingDependency, match="interbotix_xs_msgs.*sourced"):
        WidowXRobot().connect()


@pytest.mark.parametrize("ros", ROS)
def test_missing_xs_sdk_node_times_out_with_the_launch_command(monkeypatch, ros):
    opts = fake.Options(hang=ros == "ros2", exit_on_init=ros == "ros1")
    calls = fake.install(monkeypatch, ros=ros, opts=opts)
    robot = WidowXRobot(connect_timeout=0.3)
    try:
        with pytest.raises(UserError) as e:
            robot.connect()
    finally:
        opts.unblock.set()
    msg = str(e.value)
    assert "\n" not in msg and "xsarm_control" in msg and "robot_model:=wx250s" in msg
    assert not robot.is_connected
    assert ("rclpy.try_shutdown" if ros == "ros2" else "rospy.signal_shutdown") in calls.names()


def test_config_is_validated_with_one_line_errors():
    with pytest.raises(UserError, match="5-DOF"):
        WidowXRobot(robot_model="wx250")
    with pytest.raises(UserError, match="accel_time"):
        WidowXRobot(moving_time=0.2, accel_time=0.15)
    with pytest.raises(UserError, match="robot_model 'px100'"):
        WidowXRobot(robot_model="px100")
    with pytest.raises(UserError, match="gripper_close_below"):
        WidowXRobot(gripper_open_above=0.3, gripper_close_below=0.6)
    assert WidowXRobot(ros="ros1", moving_time=0.25).config.accel_time == pytest.approx(0.0625)


def test_arm_group_not_in_position_mode_is_refused(monkeypatch):
    fake.install(monkeypatch, opts=fake.Options(arm_mode="pwm"))
    with pytest.raises(UserError, match="position"):
        WidowXRobot().connect()


# ----------------------------------------------------------------------------- actions


@pytest.mark.parametrize("ros", ROS)
def test_send_action_keeps_targets_in_the_workspace_and_joints_in_limits(monkeypatch, ros):
    robot, calls = connected(monkeypatch, ros)
    robot.reset()
    home_move = arm_commands(calls, blocking=True)[-1]
    np.testing.assert_allclose(home_move, wx.HOME, atol=1e-9)
    ws = robot.workspace
    rng = np.random.default_rng(0)
    low, high = np.array(wx.ACTION_SPEC.low), np.array(wx.ACTION_SPEC.high)
    # Random actions, then a long push towards each of two far corners (the box must stop it).
    actions = [rng.uniform(low, high) for _ in range(20)]
    actions += [np.array([0.05, 0.05, 0.05, 0, 0, 0, 1.0])] * 15 + [np.array([-0.05, -0.05, -0.05, 0, 0, 0, 0.0])] * 15
    info = robot._arm.group_info
    lo, hi = np.array(info.joint_lower_limits), np.array(info.joint_upper_limits)
    step = min(robot.config.max_joint_step, 0.9 * np.pi * robot.config.moving_time)
    before = len(arm_commands(calls))
    prev = robot.joint_positions()
    for a in actions:
        sent = robot.send_action(a)
        cmd = robot.last_command
        assert ws.contains(cmd.xyz), cmd.xyz  # the clamped target is inside the box
        q = arm_commands(calls)[-1]
        assert ((q >= lo) & (q <= hi)).all()
        assert np.abs(q - prev).max() <= step + 1e-9  # velocity cap per tick
        xyz, _ = kin.ee_pose(q)
        assert ws.contains(xyz, tol=0.01), xyz  # where the joints go: in the box (IK tolerance)
        assert sent.shape == (7,) and sent.dtype == np.float32
        assert ((sent >= low - 1e-6) & (sent <= high + 1e-6)).all()
        prev = q
    assert len(arm_commands(calls)) - before == len(actions)
    assert robot.episode_info()["ticks"] == len(actions) and robot.episode_info()["refusals"] == 0
    setj = [c for c in calls.of("arm.set_joint_positions") if c[2]["blocking"] is False]
    assert all(c[2]["moving_time"] == pytest.approx(0.2) and c[2]["accel_time"] == pytest.approx(0.05) for c in setj)
    x_end = kin.ee_pose(robot.joint_positions())[0]
    np.testing.assert_allclose(x_end, ws.low, atol=0.01)  # pushed into the low corner, and no further
    assert "arm.refused" not in calls.names()


@pytest.mark.parametrize("ros", ROS)
def test_gripper_maps_to_open_close_or_release_grasp_with_hysteresis(monkeypatch, ros):
    robot, calls = connected(monkeypatch, ros)
    robot.reset()
    opened, closed = ("gripper.release", "gripper.grasp") if ros == "ros2" else ("gripper.open", "gripper.close")
    gripper_calls = lambda: [n for n in calls.names() if n.startswith("gripper.")]  # noqa: E731
    assert gripper_calls() == [opened]  # reset opens the gripper
    sent = [robot.send_action(np.array([0, 0, 0, 0, 0, 0, g]))[6] for g in (1.0, 0.5, 0.2, 0.45, 0.55, 0.9, 0.0)]
    # 0.5/0.45/0.55 lie inside the hysteresis band: keep the last command; publish only on a change.
    assert sent == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert gripper_calls() == [opened, closed, opened, closed]
    delays = [c[2]["delay"] for c in calls.log if c[0] in (opened, closed)]
    assert delays[0] == 0.5 and delays[1:] == [0.0] * 3  # reset waits for the fingers; a tick never blocks
    assert robot.get_observation()["state"][6] == pytest.approx(0.0)


def test_joint_limits_clip_or_refuse(monkeypatch):
    # A waist limited to +-0.1 rad by the motor config; pushing sideways would turn it further.
    lower, upper = list(fake.LOWER), list(fake.UPPER)
    lower[0], upper[0] = -0.1, 0.1
    push = np.array([0, 0.05, 0, 0, 0, 0, 1.0])
    robot, calls = connected(monkeypatch, opts=fake.Options(lower=lower, upper=upper))
    robot.reset()
    for _ in range(8):
        robot.send_action(push)
    waist = [q[0] for q in arm_commands(calls)]
    assert max(waist) <= 0.1 - robot.config.joint_limit_margin + 1e-12 and robot.joint_limit_hits > 0

    robot2, calls2 = connected(monkeypatch, opts=fake.Options(lower=lower, upper=upper), joint_limit_mode="refuse")
    robot2.reset()
    n0 = len(arm_commands(calls2))
    small = np.array([0, 0.01, 0, 0, 0, 0, 1.0])  # ~0.03 rad of waist per tick: a few ticks fit
    for _ in range(8):
        sent = robot2.send_action(small)
    ticks = arm_commands(calls2)[n0:]
    assert 0 < robot2.joint_limit_hits < 8
    assert len(ticks) == 8 - robot2.joint_limit_hits  # refused ticks send nothing
    assert np.all(sent[:6] == 0) and max(q[0] for q in ticks) <= 0.1


def test_effort_over_the_limit_for_several_ticks_is_a_fault(monkeypatch):
    robot, calls = connected(monkeypatch)
    robot.reset()
    core = robot._core
    a = np.array([0.01, 0, 0, 0, 0, 0, 1.0])
    core.joint_states.effort[core.js_index_map["shoulder"]] = 2500.0  # mA, over the 1800 default
    n0 = len(arm_commands(calls))
    robot.send_action(a)
    robot.send_action(a)
    with pytest.raises(WidowXFault, match="shoulder effort 2500"):
        robot.send_action(a)
    assert len(arm_commands(calls)) - n0 == 2  # the faulting tick sent nothing
    core.joint_states.effort[core.js_index_map["shoulder"]] = 300.0
    robot.send_action(a)  # the streak resets once the load is normal


def test_repeated_interbotix_refusals_are_a_fault(monkeypatch):
    robot, calls = connected(monkeypatch, max_refusals=3)
    robot._arm.refuse_all = True
    a = np.array([0.01, 0, 0, 0, 0, 0, 1.0])
    assert np.all(robot.send_action(a)[:6] == 0)  # refused: nothing moved
    robot.send_action(a)
    with pytest.raises(WidowXFault, match="refused 3"):
        robot.send_action(a)


def test_nonfinite_action_is_rejected(monkeypatch):
    robot, _ = connected(monkeypatch)
    with pytest.raises(ValueError, match="finite"):
        robot.send_action(np.array([np.nan, 0, 0, 0, 0, 0, 1]))


# ----------------------------------------------------------------------------- safe pose and torque


@pytest.mark.parametrize("ros", ROS)
def test_go_safe_goes_home_then_sleep_and_disconnect_torques_off_after(monkeypatch, ros):
    robot, calls = connected(monkeypatch, ros)
    robot.reset()
    for _ in range(5):  # end low over the table
        robot.send_action(np.array([0.0, 0.0, -0.05, 0, 0, 0, 1.0]))
    start = len(calls.log)
    robot.go_safe()
    moves = [c for c in calls.log[start:] if c[0] in ("arm.set_joint_positions", "arm.go_to_sleep_pose")]
    # lift (straight up), home, sleep -- all blocking and slow
    assert [c[0] for c in moves] == ["arm.set_joint_positions", "arm.set_joint_positions", "arm.go_to_sleep_pose"]
    assert all(c[2]["blocking"] is True and c[2]["moving_time"] >= 2.0 for c in moves)
    lift, home = np.array(moves[0][1][0]), np.array(moves[1][1][0])
    np.testing.assert_allclose(kin.ee_pose(lift)[0][2], kin.ee_pose(wx.HOME)[0][2], atol=2e-3)
    np.testing.assert_allclose(home, wx.HOME, atol=1e-9)
    assert "core.robot_torque_enable" not in calls.names()
    robot.disconnect()
    names = calls.names()
    torque = [c for c in calls.log if c[0] == "core.robot_torque_enable"]
    assert [c[1] for c in torque] == [("group", "arm", False), ("single", "gripper", False)]
    assert names.index("core.robot_torque_enable") > names.index("arm.go_to_sleep_pose")
    assert names[-1] == ("robot_shutdown" if ros == "ros2" else "rospy.signal_shutdown")
    assert not robot.is_connected


def test_disconnect_away_from_sleep_keeps_torque_on(monkeypatch, caplog):
    robot, calls = connected(monkeypatch)
    robot.reset()  # at home, not asleep
    with caplog.at_level(logging.WARNING, logger="clamkit.robot.widowx"):
        robot.disconnect()
    assert "core.robot_torque_enable" not in calls.names()
    assert "torque stays ON" in caplog.text
    assert calls.names()[-1] == "robot_shutdown"


def test_context_manager_disconnects(monkeypatch):
    calls = fake.install(monkeypatch)
    with WidowXRobot() as robot:
        assert robot.is_connected
    assert not robot.is_connected and calls.names()[-1] == "robot_shutdown"


# ----------------------------------------------------------------------------- through the runtime loop


def test_ctrl_c_in_the_runtime_loop_stops_sending_and_goes_safe(monkeypatch):
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    from clamkit.bundle import BundleMeta
    from clamkit.runtime import loop
    from clamkit.runtime.backends import Backend
    from clamkit.runtime.loop import LoopOptions
    from clamkit.specs import ArraySpec, ObservationSpec

    class CtrlCBackend(Backend):
        """Moves +x; presses Ctrl-C during the 4th tick's inference (call 5: the loop warms up first)."""

        name = "ctrl-c"

        def __init__(self):
            self.meta = BundleMeta(observation=ObservationSpec({"state": ArraySpec((7,), "float32")}),
                                   action=wx.ACTION_SPEC, fps=5.0, la_dim=8, inputs=["state"], onnx_sha256="")
            self.calls = 0

        def infer(self, obs):
            self.calls += 1
            if self.calls == 5:
                signal.raise_signal(signal.SIGINT)
            return np.array([0.01, 0, 0, 0, 0, 0, 1.0], np.float32)

    calls = fake.install(monkeypatch)
    robot = WidowXRobot()
    summary = loop.run_loop(robot, CtrlCBackend(), None, LoopOptions(hz=0, steps=20))
    assert summary["stop_reason"].startswith("interrupted")
    names = calls.names()
    ticks = [c for c in calls.of("arm.set_joint_positions") if c[2]["blocking"] is False]
    assert len(ticks) == 3  # the tick interrupted during inference sent nothing
    i_sleep = names.index("arm.go_to_sleep_pose")
    last_tick = max(i for i, c in enumerate(calls.log) if c[0] == "arm.set_joint_positions" and c[2]["blocking"] is False)
    home_moves = [i for i, c in enumerate(calls.log) if c[0] == "arm.set_joint_positions" and c[2]["blocking"] is True]
    assert last_tick < home_moves[-1] < i_sleep < names.index("core.robot_torque_enable")
    assert not robot.is_connected
    assert signal.getsignal(signal.SIGINT) is before  # the loop restored Ctrl-C
