"""The real WidowX and RealSense backends against the emulated hardware (clamkit.robot.emulate): MuJoCo
physics in real time behind Interbotix's API (both ROS layouts) and pyrealsense2's software_device.

Unlike fake_interbotix (joints jump to each command), the emulated arm takes moving_time to get there,
its joint states arrive late, its gripper squeezes what it closes on, and its faults are physical.
Everything runs in real time, so the tests use short safe moves (FAST) to stay quick.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("mujoco")

from clamkit.bundle import BundleMeta  # noqa: E402
from clamkit.dataset import Dataset  # noqa: E402
from clamkit.errors import UserError  # noqa: E402
from clamkit.robot import kinematics as kin  # noqa: E402
from clamkit.robot import widowx_common as wx  # noqa: E402
from clamkit.robot.emulate import EmulatedWidowXRobot  # noqa: E402
from clamkit.robot.emulate.world import EmulatedWorld  # noqa: E402
from clamkit.robot.widowx import WidowXFault  # noqa: E402
from clamkit.runtime.backends import Backend  # noqa: E402
from clamkit.runtime.loop import LoopOptions, run_loop  # noqa: E402
from clamkit.runtime.subscribers import Recorder  # noqa: E402
from clamkit.specs import ArraySpec, ObservationSpec  # noqa: E402

# Quick home/sleep moves (the defaults take >= 2 s each, like Interbotix's own).
FAST = dict(safe_moving_time=0.6, safe_accel_time=0.15, safe_joint_speed=3.0)


@pytest.fixture
def arm(request):
    """A connected EmulatedWidowXRobot (ROS layout from the test's `ros` parameter, default ros2), reset."""
    ros = getattr(request, "param", "ros2")
    robot = EmulatedWidowXRobot(ros=ros, **FAST)
    robot.connect()
    robot.reset(seed=1)
    yield robot
    robot.disconnect()
    assert not robot.world.running


def settle(ok, timeout: float = 0.5) -> None:
    """Wait for ok() (the arm to settle on its target: the P-only servo trails its profile and rings a little)."""
    t0 = time.monotonic()
    while not ok():
        assert time.monotonic() - t0 < timeout, "the arm did not settle"
        time.sleep(0.01)


def moved_fraction(q0, q, target) -> float:
    """How far along q0 -> target the joints q are (the joint that moves most)."""
    i = int(np.argmax(np.abs(np.asarray(target) - q0)))
    return float((q[i] - q0[i]) / (target[i] - q0[i]))


def test_time_based_profile_is_a_trapezoid_that_takes_moving_time():
    from clamkit.robot.widowx_common import Profile as _Profile

    p = _Profile(p0=1.0, p1=2.0, t0=10.0, T=0.5, ta=0.1)
    t = 10.0 + np.linspace(0, 0.5, 501)
    x = np.array([p.at(s) for s in t])
    assert p.at(9.0) == 1.0 and p.at(10.5) == 2.0 and p.at(99.0) == 2.0  # waits for t0, ends exactly at t0 + T
    assert np.all(np.diff(x) >= 0) and abs(p.at(10.25) - 1.5) < 1e-9  # monotone, symmetric about the middle
    v = np.diff(x) / np.diff(t)
    assert v[0] < 0.1 * v.max() and np.allclose(v[150:350], 1.0 / 0.4, rtol=1e-6)  # ramps up, then cruises D/(T-ta)
    linear = _Profile(0.0, 1.0, 0.0, 0.5, 0.0)  # accel_time 0: constant speed
    assert linear.at(0.25) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- the arm


@pytest.mark.parametrize("arm", ["ros2", "ros1"], indirect=True)
def test_command_is_reached_only_after_its_moving_time(arm):
    assert arm._ros == arm.config.ros  # the layout asked for is the one the driver found
    q0, mt = arm.joint_positions(), arm.config.moving_time
    t0 = time.monotonic()
    arm.send_action(np.array([0.04, 0, -0.04, 0, 0, 0, 1.0]))  # non-blocking, moving_time 0.2 s
    target = np.array(arm._arm.get_joint_commands())
    right_after = moved_fraction(q0, arm.world.arm_joints(), target)
    reached_at, fractions = None, []
    while time.monotonic() - t0 < mt + 1.0:
        q = arm.world.arm_joints()  # ground truth, sampled every few ms
        fractions.append(moved_fraction(q0, q, target))
        if np.allclose(q, target, atol=0.01):
            reached_at = time.monotonic() - t0
            break
        time.sleep(0.005)
    assert right_after < 0.25, right_after  # send_action returned long before the arm got there
    assert reached_at is not None and reached_at >= 0.8 * mt, reached_at  # there only once moving_time has passed
    assert any(0.2 < f < 0.8 for f in fractions)  # on its way along the profile in between
    # The P-only servo trails its profile (~45 ms, widowx_common.servo_gains) and rings a little as it stops;
    # once it has settled the driver's joint states (latency + publish period behind) see it there.
    time.sleep(0.4)
    np.testing.assert_allclose(arm.joint_positions(), target, atol=0.01)


def test_a_far_slow_move_after_fast_ticks_is_not_refused(arm):
    """Interbotix checks a move's speed against the moving_time in force before the call: after 0.2 s ticks,
    a 2 s move to a far pose was refused as too fast until _move_joints set the slow timing first."""
    arm.send_action(np.array([0.02, 0, 0, 0, 0, 0, 1.0]))
    assert arm._arm.moving_time == arm.config.moving_time
    arm._move_joints(wx.SLEEP, "sleep")  # ~2 rad away: 10 rad/s at 0.2 s, refused by Interbotix's check
    np.testing.assert_allclose(arm.world.arm_joints(), wx.SLEEP, atol=0.05)


@pytest.mark.parametrize("arm", ["ros2", "ros1"], indirect=True)
def test_gripper_closes_on_a_block_and_keeps_squeezing(arm):
    world = arm.world
    block = np.array([0.30, 0.0, 0.02])
    with world.lock:  # put the block on the table in front of the gripper
        d, adr = world.sim._data, world.sim._block_qpos
        d.qpos[adr:adr + 7] = [*block, 1, 0, 0, 0]
    ik = kin.solve_ik(block + (0, 0, 0.012), (0.0, 1.3, 0.0), q0=arm.joint_positions())  # fingers straddle it
    assert ik.success
    arm._move_joints(ik.q, "grasp pose")
    assert arm.gripper_opening() > 0.95
    arm.send_action(np.array([0, 0, 0, 0, 0, 0, 0.0]))  # close: grasp()/close() with delay=0, returns at once
    time.sleep(0.8)
    finger = world.finger()
    time.sleep(0.2)
    assert finger > kin.FINGER_CLOSED + 0.005, finger  # stopped by the 4 cm block, not at the closed limit
    assert abs(world.finger() - finger) < 1e-4  # and stays there
    assert 0.2 < arm.gripper_opening() < 0.8
    assert world.gripper_effort < 0 and arm._gripper.gripper_moving  # PWM still on: it keeps squeezing
    ts = world.task_state()
    assert np.linalg.norm(ts["block_pos"][:2] - block[:2]) < 0.02  # held in place, not knocked away
    arm.send_action(np.array([0, 0, 0, 0, 0, 0, 1.0]))  # open again: the timer stops the motor at the limit
    time.sleep(0.8)
    assert world.finger() > 0.036 and world.gripper_effort == 0.0 and not arm._gripper.gripper_moving


def test_joint_states_arrive_late():
    robot = EmulatedWidowXRobot(latency=0.1, **FAST)
    with robot:
        robot.reset(seed=2)
        robot.send_action(np.array([0.05, 0, 0, 0, 0, 0, 1.0]))
        time.sleep(0.15)  # mid-move (the servo trails its 0.2 s profile by ~45 ms)
        with robot._core.js_mutex:
            js = robot._core.joint_states
            stamp = js.header.stamp.sec + js.header.stamp.nanosec * 1e-9
            seen = np.array(js.position[:6])
        truth = robot.world.arm_joints()
        age = time.time() - stamp
        robot.connect()  # already connected: nothing happens
        assert robot.render(32, 24).shape == (24, 32, 3)  # the scene camera, for --camera sim on the emulated arm
        assert 0.1 <= age < 0.3, age  # 100 ms latency + a 10 ms publish period + scheduling on a busy machine
        target = np.array(robot._arm.get_joint_commands())
        i = int(np.argmax(np.abs(target - seen)))
        assert abs(target[i] - seen[i]) > abs(target[i] - truth[i]) + 0.005  # the driver sees the arm behind


def test_a_stalled_physics_thread_is_reported_per_episode(arm):
    """A loaded host can starve the real-time physics thread; the episode says how much physics it skipped
    (rehearsal reports it, so a gap caused by the machine is not blamed on the drivers)."""
    assert arm.episode_info()["physics_skipped_s"] < 0.05
    with arm.world.lock:  # the physics thread waits here, as if the host gave it no CPU
        time.sleep(0.4)
    time.sleep(0.05)
    assert 0.2 <= arm.episode_info()["physics_skipped_s"] <= 0.4
    arm.reset(seed=2)
    assert arm.episode_info()["physics_skipped_s"] < 0.05  # counted per episode


def test_emulated_api_checks_limits_like_interbotix():
    """The API itself (no clamkit driver): speed checked against the previous moving_time, nothing sent when
    refused, ROS 1 returning None on success, home = zeros, single-joint moves, torque off, no node -> exit."""
    from clamkit.robot.emulate import interbotix

    world = EmulatedWorld()
    with pytest.raises(ValueError, match="ros must be"):
        interbotix.install(world, "ros3")
    with pytest.raises(ValueError, match="unknown fault"):
        world.inject("meteor")
    restore = interbotix.install(world, "ros1")
    try:
        from interbotix_xs_modules.arm import InterbotixManipulatorXS

        with pytest.raises(SystemExit):  # ROS 1 core without the xs_sdk services
            InterbotixManipulatorXS("wx250s", moving_time=0.2, accel_time=0.05, init_node=False)
        world.start()
        bot = InterbotixManipulatorXS("wx250s", moving_time=0.2, accel_time=0.05, init_node=False)
        arm, core = bot.arm, bot.dxl
        assert arm.set_joint_positions([0.0] * 6, moving_time=2.0, blocking=False) is False  # 2 rad in 0.2 s
        np.testing.assert_allclose(arm.get_joint_commands(), wx.SLEEP, atol=2e-3)  # nothing was sent (measured at start)
        assert arm.set_joint_positions([0.0, -1.7, 1.5, 0, 0.8, 0], blocking=False) is None  # ROS 1: None on success
        assert arm.set_joint_positions([0.0, -1.7, 9.0, 0, 0.8, 0]) is False  # beyond the elbow limit
        assert arm.set_single_joint_position("waist", 0.3, moving_time=0.3, accel_time=0.1, blocking=True)
        assert arm.get_single_joint_command("waist") == 0.3
        settle(lambda: abs(world.arm_joints()[0] - 0.3) < 0.01)  # blocking returns after moving_time; the servo trails
        assert not arm.check_single_joint_limit("waist", 4.0)
        arm.go_to_home_pose(moving_time=1.0, accel_time=0.2, blocking=True)
        settle(lambda: np.allclose(world.arm_joints(), 0.0, atol=0.01))
        core.robot_torque_enable("group", "arm", False)
        core.robot_write_joint_command("waist", 0.5)  # ignored: no torque
        time.sleep(0.2)
        assert abs(world.arm_joints()[0]) < 0.01 and core.robot_get_single_joint_state("waist")["position"] == pytest.approx(0, abs=0.01)
        core.robot_reboot_motors("group", "arm", True)
        assert world.torque[:6].all()
        assert core.robot_get_robot_info("single", "gripper").mode == "pwm"
        arm.set_trajectory_time(moving_time=0.3, accel_time=0.1)
        core.robot_write_commands("arm", [0.1] * 6)  # raw group command: the current profile times
        time.sleep(0.3)
        settle(lambda: np.allclose(core.robot_get_joint_states().position[:6], 0.1, atol=0.01))
        bot.gripper.set_pressure(1.0)
        assert bot.gripper.gripper_value == 350
    finally:
        restore()
        world.stop()
    assert "interbotix_xs_modules.arm" not in __import__("sys").modules


# ----------------------------------------------------------------------------- faults through the runtime loop


class Reach(Backend):
    """Moves the EE forward and down; calls on_tick(t) before each tick's inference (after a warm-up call)."""

    name = "reach"

    def __init__(self, on_tick, image: bool = False):
        keys = {"state": ArraySpec((7,), "float32")} | ({"image": ArraySpec((64, 64, 3), "uint8")} if image else {})
        self.meta = BundleMeta(observation=ObservationSpec(keys), action=wx.ACTION_SPEC, fps=5.0, la_dim=8,
                               inputs=list(keys), onnx_sha256="")
        self.on_tick, self.calls = on_tick, -1

    def infer(self, obs):
        self.calls += 1
        if self.calls:
            self.on_tick(self.calls - 1)
        return np.array([0.01, 0, -0.01, 0, 0, 0.05, 1.0], np.float32)


FAULTS = {
    "silent": (dict(duration=1.0), "joint states are"),
    "late": (dict(duration=1.5, latency=0.5), "joint states are"),
    "overload": (dict(duration=1.0, joint="shoulder", torque=8.0), "effort"),
}
# An external push reads as a sustained overload only on a servo stiff enough to hold against it: the default
# XM430 at P 800 (~19 N m/rad) yields, and the driver re-bases each tick's target on the measured joints, so its
# current never stays high. kp 400 per joint is a servo at a much higher P gain.
STIFF = dict(servo_kp=400.0)


@pytest.mark.parametrize("ros", ["ros2", "ros1"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_injected_fault_ends_in_the_safe_pose_with_the_recording_kept(tmp_path, fault, ros):
    params, reason = FAULTS[fault]
    robot = EmulatedWidowXRobot(ros=ros, **FAST, **(STIFF if fault == "overload" else {}))
    backend = Reach(lambda t: robot.world.inject(fault, **params) if t == 3 else None)
    with pytest.raises(WidowXFault, match=reason) as e:
        run_loop(robot, backend, None, LoopOptions(hz=5, steps=15, episodes=1, report=tmp_path / "r.json"), subscribers=[Recorder(tmp_path / "rec")])
    assert "\n" not in str(e.value)
    ep = Dataset(tmp_path / "rec").episodes[0]
    assert 4 <= ep["length"] <= 7  # ticks 0-3 (+ the one or two it took to notice), kept
    import json

    summary = json.loads((tmp_path / "r.json").read_text())
    # the effort guard's fault is an EffortFault, the WidowXFault that may end just its episode
    assert summary["stop_reason"].startswith(("fault: WidowXFault", "fault: EffortFault")) and "\n" not in summary["stop_reason"]
    # go_safe() reached the sleep pose (ground truth: the simulated joints when it disconnected).
    np.testing.assert_allclose(robot.world.last_joints, wx.SLEEP, atol=0.05)
    assert not robot.is_connected and not robot.world.torque.any()  # resting on the cradle: torque off


def test_overload_fails_just_its_episode_when_told_to_continue(tmp_path):
    """As widowx-sim under clam-eval: the driver's effort fault ends that episode as a failure, the next one
    starts from the driver's own reset (lift, home), and the run ends normally in the safe pose."""
    robot = EmulatedWidowXRobot(**FAST, **STIFF)
    backend = Reach(lambda t: robot.world.inject("overload", duration=1.0, joint="shoulder", torque=8.0) if t == 2 else None)
    summary = run_loop(robot, backend, None, LoopOptions(hz=5, steps=8, episodes=2, continue_after_fault=True))
    first, second = summary["episodes"]
    assert first["success"] is False and first["fault"].startswith("EffortFault: joint ") and "over the limit 1800" in first["fault"]
    assert "fault" not in second and second["ticks"] == 8 and summary["stop_reason"] == "completed"
    np.testing.assert_allclose(robot.world.last_joints, wx.SLEEP, atol=0.05)


# ----------------------------------------------------------------------------- the camera


@pytest.fixture
def world():
    w = EmulatedWorld()
    w.start()
    w.place_objects(1)
    yield w
    w.stop()


@pytest.fixture
def emulated_camera(world):
    pytest.importorskip("pyrealsense2")
    from clamkit.robot.emulate import realsense as rs_emulator
    cams = []

    def make(**kwargs):
        cam = rs_emulator.EmulatedRealSense(world, **kwargs)
        cams.append((cam, cam.install()))
        return cam

    yield make
    for _, restore in reversed(cams):
        restore()


def realsense(**config):
    from clamkit.robot.realsense import RealSenseCamera

    return RealSenseCamera(**({"serial": "000000000042", "width": 64, "height": 64, "warmup_frames": 10,
                               "reconnect_backoff": 0.05, "reconnect_backoff_max": 0.1} | config))


def test_discovery_by_serial_profile_negotiation_and_aligned_depth(emulated_camera):
    emulated_camera()
    with pytest.raises(UserError, match=r"no RealSense device found \(serial 123\); connected: 000000000042"):
        realsense(serial="123").connect()
    with pytest.raises(UserError, match="cannot stream colour at 1280x720@30"):
        realsense(capture_width=1280, capture_height=720).connect()
    with realsense(serial=None, depth=True) as cam:  # no serial: the first camera found
        assert cam.serial == "000000000042"
        f = cam.read()
    assert f.image.shape == (64, 64, 3) and f.depth.shape == (64, 64) and f.depth.dtype == np.float32
    assert 40 < f.image.mean() < 220  # a lit scene, past the dark auto-exposure frames
    table = f.depth[f.depth > 0]
    assert table.size > 0.9 * f.depth.size and 0.4 < np.median(table) < 1.5  # the tabletop ~0.5-1 m from the camera
    assert 0 <= time.monotonic() - f.timestamp < 1.0  # global_time stamps mapped onto the monotonic clock


def test_slow_start_waits_for_the_first_frame_without_reconnecting(emulated_camera):
    emulated_camera(startup_delay=1.5, exposure_frames=10)  # longer than timeout_ms (1 s)
    t0 = time.monotonic()
    with realsense(timeout_ms=1000) as cam:
        assert time.monotonic() - t0 > 1.5 and cam.reconnects == 0
        first = cam.read()
    assert first.index > 10 and first.image.mean() > 40  # the dark warm-up frames were discarded
    # Waiting only timeout_ms for a first frame (the old behaviour) restarts a slow camera forever: bounded now.
    from clamkit.robot.realsense import CameraFault

    with pytest.raises(CameraFault, match="restarted 1 time"):
        with realsense(timeout_ms=1000, first_frame_timeout_ms=1000, max_reconnects=1):
            pass


def test_dropped_frames_are_counted_and_skipped(emulated_camera):
    cam_emulator = emulated_camera()
    with realsense() as cam:
        first = cam.read().index
        before = cam.frames_dropped
        cam_emulator.drop(5)
        idx = [first] + [cam.read().index for _ in range(12)]
    gaps = np.diff(idx)
    assert gaps.max() >= 6  # the five lost frame numbers are missing from what was handed out
    assert cam.frames_dropped - before >= 5 and cam.reconnects == 0


def test_disconnect_mid_run_reconnects_then_a_lost_camera_is_a_clean_fault(emulated_camera):
    from clamkit.robot.realsense import CameraFault

    cam_emulator = emulated_camera()
    with realsense(max_reconnects=3) as cam:
        a = cam.async_read()
        # A slow restart, as on a loaded machine: the reconnect is counted a second before its first frame. Frames
        # that arrived between `a` and the unplug are newer than `a` but not the restarted stream's; waiting on
        # them unplugged the camera again during the start-up, which then took the 5 s first-frame timeout.
        cam_emulator.startup_delay = 1.0
        time.sleep(0.2)
        cam_emulator.unplug(0.5)
        back = time.monotonic() + 0.5
        # timeout_ms (1 s) without frames, then a reconnect to the re-enumerated camera and its first frame (~2.5 s)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (cam.reconnects >= 1 and cam.async_read().timestamp > back):
            time.sleep(0.05)
        b = cam.async_read()
        assert cam.reconnects == 1 and b.timestamp > back > a.timestamp
        cam_emulator.unplug(None)  # gone for good
        t0 = time.monotonic()
        with pytest.raises(CameraFault) as e:
            for _ in range(100):
                cam.read()
        assert "not back after 3 reconnect(s)" in str(e.value) and "\n" not in str(e.value)
        assert time.monotonic() - t0 < 5.0


def test_camera_lost_mid_run_ends_in_the_safe_pose_with_the_recording_kept(tmp_path):
    pytest.importorskip("pyrealsense2")
    from clamkit.robot.realsense import RealSenseCamera

    robot = EmulatedWidowXRobot(**FAST)
    cam = RealSenseCamera(serial="000000000042", width=64, height=64, warmup_frames=5, max_reconnects=1,
                          reconnect_backoff=0.05, reconnect_backoff_max=0.1)
    backend = Reach(lambda t: robot.camera.unplug(None) if t == 3 else None, image=True)
    with pytest.raises(Exception) as e:  # noqa: B017 - the watchdog (StaleFrame) or CameraFault, whichever is first
        run_loop(robot, backend, cam, LoopOptions(hz=5, steps=20, episodes=1), subscribers=[Recorder(tmp_path / "rec")])
    assert type(e.value).__name__ in ("StaleFrame", "CameraFault") and "\n" not in str(e.value)
    ep = Dataset(tmp_path / "rec").episodes[0]
    assert 3 <= ep["length"] <= 8  # the ticks before the camera went, kept
    np.testing.assert_allclose(robot.world.last_joints, wx.SLEEP, atol=0.05)
    assert not cam.is_connected and not robot.is_connected


def test_clam_run_emulate_drives_both_real_drivers(tmp_path):
    """The switch end to end: a pixel bundle through clam-run --emulate (robot widowx + camera realsense),
    two short episodes at 5 Hz, recorded, with the arm back on its cradle at the end."""
    pytest.importorskip("pyrealsense2")
    pytest.importorskip("onnx")
    import json

    from clamkit.runtime import cli
    from click.testing import CliRunner

    spec = importlib.util.spec_from_file_location("runtime_bundles", Path(__file__).parents[1] / "runtime" / "conftest.py")
    bundles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundles)  # the tiny ONNX policies of tests/runtime (no torch)
    bundle = bundles.image_bundle(tmp_path / "b", hw=(64, 64), dim=7, semantics=wx.ACTION_SPEC.semantics)
    fast = [a for k, v in FAST.items() for a in ("--robot-opt", f"{k}={v}")]
    args = [str(bundle), "--robot", "widowx", "--camera", "realsense", "--emulate", "--episodes", "2", "--steps", "4",
            "--hz", "5", "--record", str(tmp_path / "rec"), "--report", str(tmp_path / "run.json"),
            "--camera-opt", "warmup_frames=5", *fast]
    result = CliRunner().invoke(cli.run_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["robot"] == "widowx" and report["camera"] == "realsense" and report["stop_reason"] == "completed"
    assert report["ticks"] == 8 and len(report["episodes"]) == 2
    assert all("success" in ep and ep["ticks"] == 4 for ep in report["episodes"])
    data = Dataset(tmp_path / "rec")
    assert len(data) == 2 and data.meta["robot"] == "widowx"
    bad = CliRunner().invoke(cli.run_main, [str(bundle), "--robot", "widowx-sim", "--emulate"])
    assert bad.exit_code == 2 and "use --robot widowx" in bad.output
