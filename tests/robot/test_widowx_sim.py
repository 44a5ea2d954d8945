"""The simulated WidowX 250s: experts solve all four tasks (without tripping the real driver's effort guard),
seeds reproduce scenes, the camera is upright, the workspace holds, the servos are as strong as the real ones
and a sustained push faults like the real driver, the generic record loop drives it with the `sim` camera, and
visual variation changes the looks only."""

import re

import numpy as np
import pytest

pytest.importorskip("mujoco")

from clamkit.bundle import BundleMeta  # noqa: E402
from clamkit.dataset import Dataset, DatasetWriter  # noqa: E402
from clamkit.errors import UserError  # noqa: E402
from clamkit.robot import widowx_common as wx  # noqa: E402
from clamkit.robot.base import DeviceNotConnectedError, EpisodeFault  # noqa: E402
from clamkit.record.episodes import record_episodes  # noqa: E402
from clamkit.robot.sim_camera import SimCamera  # noqa: E402
from clamkit.record.widowx_sim import expert_policy, play_policy  # noqa: E402
from clamkit.robot.widowx_sim import TASKS, VisualVariation, WidowXSimRobot  # noqa: E402
from clamkit.runtime.backends import Backend  # noqa: E402
from clamkit.runtime.loop import LoopOptions, run_loop  # noqa: E402
from clamkit.specs import ArraySpec, ObservationSpec  # noqa: E402


@pytest.fixture(scope="module", params=TASKS)
def robot(request):
    r = WidowXSimRobot(task=request.param, max_steps=30)
    r.connect()
    yield r
    r.disconnect()


def rollout(robot, policy, seed):
    policy.reset(seed)
    obs = robot.reset(seed=seed)
    states = [obs["state"]]
    while not robot.episode_done():
        robot.send_action(policy(obs))
        obs = robot.get_observation()
        states.append(obs["state"])
    return np.stack(states), robot.episode_info()


def test_expert_succeeds_without_tripping_the_effort_guard(robot):
    """The guard is on (the real driver's 1800 mA for 3 ticks) while the experts hold the button on its bottom stop
    and push toward 1 cm past closed until the drawer shuts: servos as soft as the real ones take that well under the
    limit."""
    assert (robot._effort.limit, robot._effort.ticks) == (wx.EFFORT_LIMIT, wx.EFFORT_FAULT_TICKS)
    wins = [rollout(robot, expert_policy(robot.task, robot), seed)[1]["success"] for seed in range(10)]
    print(f"{robot.task} expert: {sum(wins)}/10")
    assert sum(wins) >= 9


def test_spec_and_observation(robot):
    assert robot.name == "widowx-sim" and robot.fps == 5.0
    assert robot.action_spec.dim == 7 and robot.action_spec.semantics == "ee_delta_xyz_rpy+gripper"
    obs = robot.reset(seed=0)
    assert set(obs) == {"state"} and obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    xyz, rpy = robot.ee_pose()
    assert np.allclose(obs["state"][:3], xyz, atol=1e-6) and np.allclose(obs["state"][3:6], rpy, atol=1e-6)
    assert np.linalg.norm(robot.task_state()["ee_pos"] - xyz) < 1e-6  # the MuJoCo site agrees with the FK
    assert obs["state"][6] > 0.95  # reset opens the gripper
    robot.send_action(np.array([0, 0, 0, 0, 0, 0, 0.0]))
    assert robot.get_observation()["state"][6] < 0.05  # 0 = closed within one tick


def test_same_seed_same_scene(robot):
    first = robot.reset(seed=5)["state"], robot.task_state()["target"], robot.render(32, 32)
    robot.send_action(np.array([0.02, 0.0, -0.02, 0, 0, 0, 1.0]))
    again = robot.reset(seed=5)["state"], robot.task_state()["target"], robot.render(32, 32)
    other = robot.reset(seed=6)["state"], robot.task_state()["target"]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.allclose(first[1], other[1])


def test_render_is_upright_rgb(robot, tmp_path):
    robot.reset(seed=0)
    img = robot.render(128, 96)
    assert img.shape == (96, 128, 3) and img.dtype == np.uint8
    # The camera looks down at the table: the bottom of the frame is tan table (red > blue), the top is
    # the grey floor beyond it and the arm. Upside down, this would be the other way round.
    bottom, top = img[-24:].astype(float), img[:24].astype(float)
    warmth = lambda part: (part[..., 0] - part[..., 2]).mean()  # noqa: E731
    assert warmth(bottom) > 40 and warmth(top) < warmth(bottom) - 20


def test_actions_beyond_the_workspace_are_clamped(robot, monkeypatch):
    monkeypatch.setattr(robot._effort, "limit", None)  # at the corners the arm may press on the task's objects
    ws = robot.workspace
    for push in ([0.05, 0.05, 0.05], [0.05, -0.05, -0.05], [-0.05, 0.05, -0.05]):
        robot.reset(seed=1)
        for _ in range(15):
            sent = robot.send_action(np.array([*push, 0, 0.25, 0, 1.0]))
            xyz, rpy = robot.ee_pose()
            assert ws.contains(xyz, tol=0.01), (push, xyz)  # the arm tracks its clamped target within ~1 cm
            assert rpy[1] <= ws.rpy_high[1] + 0.05
        target = robot.last_command.xyz
        assert np.allclose(target, np.clip(target, ws.low, ws.high))
        assert any(np.isclose(target[i], ws.high[i] if push[i] > 0 else ws.low[i]) for i in range(3))
        # The returned (recorded) action is what was applied: at the wall, the clamped delta is small.
        assert np.abs(sent[:3]).min() < 0.02 and sent.dtype == np.float32


def test_episode_ends_at_max_steps_and_lifecycle_errors():
    with pytest.raises(UserError, match="unknown widowx-sim task"):
        WidowXSimRobot(task="stack-blocks")
    with pytest.raises(UserError, match="effort_limit"):
        WidowXSimRobot(effort_limit=0)
    with pytest.raises(UserError, match="effort_fault_ticks"):
        WidowXSimRobot(effort_fault_ticks=0)
    r = WidowXSimRobot(task="reach-block", max_steps=3)
    with pytest.raises(DeviceNotConnectedError):
        r.reset(seed=0)
    with r:
        r.reset(seed=0)
        for _ in range(3):
            assert not r.episode_done()
            r.send_action(np.zeros(7, np.float32))
        assert r.episode_done() and "success" in r.episode_info()
    assert not r.is_connected


def test_play_policy_covers_the_action_space(robot, monkeypatch):
    monkeypatch.setattr(robot._effort, "limit", None)  # as clam-record: play bumps into the objects now and then
    actions = []
    for seed in range(3):
        policy = play_policy(robot.task, robot)
        policy.reset(seed)
        obs = robot.reset(seed=seed)
        for _ in range(robot.max_steps):
            a = policy(obs)
            actions.append(robot.send_action(a))
            obs = robot.get_observation()
    A = np.stack(actions)
    lo, hi = np.asarray(robot.action_spec.low), np.asarray(robot.action_spec.high)
    assert np.all(A >= lo - 1e-6) and np.all(A <= hi + 1e-6)  # float32 rounds 0.05 up by 7e-10
    assert np.all(A[:, :6].std(0) > 0.1 * np.asarray(robot.action_spec.high[:6]))  # every dimension moves
    assert {0.0, 1.0} <= set(np.round(A[:, 6], 3))  # opens and closes


def test_record_loop_with_sim_camera(tmp_path):
    with WidowXSimRobot(task="push-button", max_steps=10) as robot, SimCamera(robot, 32, 32) as cam:
        obs_spec = ObservationSpec(robot.observation_spec.keys | {"image": cam.spec})
        writer = DatasetWriter(tmp_path / "ds", observation=obs_spec, action=robot.action_spec, fps=robot.fps,
                               robot=robot.name, task=robot.task)
        summary = record_episodes(robot, expert_policy(robot.task, robot), writer, 2, camera=cam, max_steps=10,
                                  progress=False)
    assert summary["episodes_total"] == 2 and summary["success_rate"] == 1.0
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 2


# ----------------------------------------------------------------------------- the two tasks added for issue 14


def test_place_block_success_needs_the_block_in_the_pot():
    with WidowXSimRobot(task="place-block", max_steps=3) as r:
        r.reset(seed=4)
        ts = r.task_state()
        assert np.linalg.norm(ts["block_pos"][:2] - ts["pot_pos"][:2]) >= 0.13  # apart at reset
        assert not r._task_success()
        q = r._block_qpos
        r._data.qpos[q:q + 3] = ts["pot_pos"] + (0.0, 0.0, 0.08)  # held above the pot: not yet
        import mujoco

        mujoco.mj_forward(r._model, r._data)
        assert not r._task_success()
        r._data.qpos[q:q + 3] = ts["pot_pos"] + (0.0, 0.0, 0.03)  # resting inside
        mujoco.mj_forward(r._model, r._data)
        assert r._task_success()


def test_close_drawer_starts_open_and_stays_open_untouched():
    with WidowXSimRobot(task="close-drawer", max_steps=5) as r:
        r.reset(seed=2)
        before = r.task_state()["drawer_opening"]
        for _ in range(5):  # the arm hovers at home, far from the drawer
            r.send_action(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32))
        after = r.task_state()["drawer_opening"]
    assert 0.04 <= before <= 0.08 and abs(after - before) < 2e-3 and not r.episode_info()["success"]


def test_close_drawer_expert_backs_off_once_the_drawer_is_shut():
    """The drawer shuts within a few ticks of 50; an expert that then kept pushing looked, on camera, like one
    standing still, and the policies learned from it pushed on the shut drawer into the effort guard."""
    with WidowXSimRobot(task="close-drawer", max_steps=25) as r:
        expert = expert_policy("close-drawer", r)
        _, info = rollout(r, expert, seed=4)
        ts = r.task_state()
        axis = np.array([np.cos(ts["cabinet_yaw"]), np.sin(ts["cabinet_yaw"])])
        gap = (ts["drawer_front"][:2] - ts["ee_pos"][:2]) @ axis  # EE in front of the shut drawer's face
        last = expert(r.get_observation())
    assert info["success"] and ts["drawer_opening"] < 0.002
    assert gap > 0.03 and abs(last[:2] @ axis) < 0.01  # backed off, holding: not pushing toward the cabinet


# ----------------------------------------------------------------------------- visual variation


def _scene(vary, seed, size=48):
    with WidowXSimRobot(task="place-block", vary=vary) as r:
        obs = r.reset(seed=seed)
        return obs["state"], r.task_state()["target"], r.task_state()["pot_pos"], r.render(size, size)


def test_visual_variation_off_renders_the_default_scene_and_on_differs_per_episode():
    state0, target0, pot0, off = _scene(None, 3)
    assert np.array_equal(off, _scene("none", 3)[3])  # off is off, bit for bit
    state1, target1, pot1, on = _scene("all", 3)
    # the same layout (own random stream), only the looks change
    assert np.array_equal(state0, state1) and np.array_equal(target0, target1) and np.array_equal(pot0, pot1)
    assert np.abs(on.astype(int) - off).mean() > 5
    assert np.array_equal(on, _scene("all", 3)[3])  # seeded: the same episode looks the same
    assert np.abs(_scene("all", 4)[3].astype(int) - on).mean() > 5


@pytest.mark.parametrize("kind", VisualVariation.KINDS)
def test_each_kind_of_variation_changes_the_render(kind):
    off = _scene(None, 7)[3]
    on = _scene(kind, 7)[3]
    assert (np.abs(on.astype(int) - off) > 10).mean() > 0.002, kind


def test_variation_does_not_change_the_physics():
    runs = []
    for vary in (None, "all"):
        with WidowXSimRobot(task="place-block", max_steps=12, vary=vary) as r:
            states, info = rollout(r, expert_policy("place-block", r), seed=11)
            runs.append(states)
    assert np.array_equal(runs[0], runs[1])


def test_visual_variation_parse():
    assert VisualVariation.parse("colors,camera") == VisualVariation(colors=True, camera=True)
    assert VisualVariation.parse("all").to_json() == list(VisualVariation.KINDS)
    assert not VisualVariation.parse(None).any and not VisualVariation.parse("none").any
    with pytest.raises(UserError, match="unknown textures"):
        VisualVariation.parse("colors,textures")


def test_clam_record_new_task_with_visual_variation(tmp_path):
    from click.testing import CliRunner

    from clamkit.record.cli import main

    out = tmp_path / "ds"
    res = CliRunner().invoke(main, ["widowx-sim", "--task", "close-drawer", "--episodes", "2", "--max-steps", "8",
                                    "--image-size", "24", "--vary", "colors,distractors", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = Dataset(out)
    assert ds.meta["task"] == "close-drawer" and ds.meta["info"]["vary"] == ["colors", "distractors"]
    first = [ds.episode(i)["image"][0] for i in range(2)]
    assert not np.array_equal(*first)  # each episode looks different
    assert CliRunner().invoke(main, ["widowx-sim", "--vary", "sepia", "--out", str(tmp_path / "x")]).exit_code == 2


def test_clam_record_ends_episodes_k_steps_after_success(tmp_path):
    """--end-after-success K: demonstrations that stop once the task is done (the push-button expert presses at
    tick 3-5 of 50), K steps after the first success; without it every episode runs to --max-steps."""
    from click.testing import CliRunner

    from clamkit.record.cli import main

    def lengths(*extra):
        out = tmp_path / f"ds{len(extra)}"
        res = CliRunner().invoke(main, ["widowx-sim", "--task", "push-button", "--episodes", "2", "--max-steps", "20",
                                        "--quiet", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        ds = Dataset(out)
        return ds, [len(ds.episode(i)["state"]) - 1 for i in range(2)]  # steps (frames - 1)

    full, n_full = lengths()
    cut, n_cut = lengths("--end-after-success", "2")
    assert n_full == [20, 20] and "end_after_success" not in full.meta["info"]
    assert all(4 <= n <= 9 for n in n_cut) and cut.meta["info"]["end_after_success"] == 2
    assert all(e["success"] for e in cut.meta["episodes"])
    with WidowXSimRobot(task="push-button") as r:  # the last step recorded is the 2nd after the first success
        expert = expert_policy("push-button", r)
        states, _ = rollout(r, expert, seed=0)
    assert np.allclose(cut.episode(0)["state"], states[:n_cut[0] + 1], atol=1e-5)


def test_arm_trails_each_tick_like_a_p_only_dynamixel():
    """The servos follow the tick's time profile as an XM430 at P 800, I 0, D 0 does (~19 N m/rad per motor,
    damped by its back-EMF): a 5 cm step is mostly covered within the 0.2 s tick but trails the profile (the
    old kp-400 servo covered it all), and with the target held it arrives."""
    import mujoco

    kp, kv = wx.servo_gains()
    np.testing.assert_allclose(kp, [18.9, 37.8, 37.8, 18.9, 18.9, 6.9], atol=0.05)
    np.testing.assert_allclose(kv[:5], [0.85, 1.70, 1.70, 0.85, 0.85], atol=0.01)
    r = WidowXSimRobot(task="reach-block")
    with r:
        r.reset(seed=0)
        for delta in ([0.05, 0, 0], [0, -0.05, 0], [0, 0, -0.05]):
            before = r.ee_pose()[0]
            r.send_action(np.array([*delta, 0, 0, 0, 1.0]))
            covered = np.dot(r.ee_pose()[0] - before, delta) / np.dot(delta, delta)
            assert 0.6 < covered < 0.9, (delta, covered)
            for _ in range(r._substeps):  # one more tick on the same target
                mujoco.mj_step(r._model, r._data)
            covered = np.dot(r.ee_pose()[0] - before, delta) / np.dot(delta, delta)
            assert abs(covered - 1.0) < 0.1, (delta, covered)


def test_sim_camera_sees_what_the_realsense_path_makes_of_a_640x480_capture():
    """widowx-sim's camera renders the D435's 640x480 and centre-crops + area-resizes it with the RealSense
    backend's own functions, so training frames are the frames a deployment sees."""
    from clamkit.imageops import center_crop, resize_area

    r = WidowXSimRobot(task="place-block")
    r.connect()
    try:
        r.reset(seed=3)
        cam = SimCamera(r, 64, 64)
        cam.connect()
        frame = cam.read().image
        expected = resize_area(center_crop(r.render(640, 480), 64, 64), 64, 64)
        assert frame.shape == (64, 64, 3) and np.array_equal(frame, expected)
        assert not np.array_equal(frame, r.render(64, 64))  # a direct 64x64 render aliases differently
        assert SimCamera(r, 1024, 1024).capture is None  # larger than the capture: rendered directly
    finally:
        r.disconnect()


# ----------------------------------------------------------------------------- servo strength and the effort guard

LOW_WORKSPACE = wx.Workspace(low=(0.18, -0.22, -0.1))  # lets the target go below the table top
DOWN = np.array([0, 0, -0.05, 0, 0, 0, 0.0], np.float32)
PRESS = np.array([0, 0, -0.05, 0, 0.25, 0, 0.0], np.float32)  # down and pitching the fingers into the table


def test_efforts_are_what_the_xs_sdk_reports_for_the_wx250s_servos():
    """XM430-W350 joints report their primary motor's current (the shoulder and elbow share the load with a
    shadow motor); the XL430-W250 on wrist_rotate reports load permille x 2.69."""
    assert wx.STALL_TORQUE.tolist() == [4.1, 8.2, 8.2, 4.1, 4.1, 1.5]
    np.testing.assert_allclose(wx.joint_efforts(wx.STALL_TORQUE), [2300] * 5 + [2690])
    np.testing.assert_allclose(wx.joint_efforts([1.0, 1.0, -1.0, 0, 0, 0])[:3], [561, 280, -280], atol=1)


def test_arm_torque_saturates_at_the_servos_stall_torque():
    """Held 0.5 rad short of a target below the table, each joint's actuator torque (gravity load included) stays
    within its servos' stall torque, and the shoulder, which carries the push, reaches it (the old MJCF allowed
    20 N m there). A policy cannot get there through actions alone (next test); a collision mid-move can."""
    import mujoco

    r = WidowXSimRobot(task="reach-block", effort_limit=None)
    with r:
        r.reset(seed=0)
        assert r.joint_torques()[1] < -0.5  # holding the arm up against gravity is the servos' work too
        target = r.joint_positions() + np.array([0, 0.5, 0.5, 0, 0, 0])  # shoulder and elbow: forward and down
        peak = np.zeros(6)
        for _ in range(3 * r._substeps):
            r._data.ctrl[r._arm_act] = target
            mujoco.mj_step(r._model, r._data)
            tau = r._data.qfrc_actuator[r._arm_dof]
            assert np.all(np.abs(tau) <= wx.STALL_TORQUE + 1e-9), tau
            peak = np.maximum(peak, np.abs(tau))
        assert peak[1] == pytest.approx(wx.STALL_TORQUE[1])
        np.testing.assert_allclose(r.joint_efforts(), wx.joint_efforts(r.joint_torques()))


def test_pressing_into_the_table_with_the_largest_actions_stays_under_the_real_effort_limit():
    """Each tick's target is the measured pose plus the action, and a P-800 servo needs ~0.17 rad of error for
    the driver's 1800 mA: the largest push into the table, held for 10 ticks, reads well under it (the old kp-400
    servo tripped the guard in 3 ticks, and taught the experts to lift off the instant a task was done)."""
    r = WidowXSimRobot(task="reach-block", workspace=LOW_WORKSPACE)
    with r:
        r.reset(seed=0)
        peak = 0.0
        for _ in range(10):
            r.send_action(PRESS)
            peak = max(peak, float(np.abs(r.joint_efforts()).max()))
        assert r.ee_pose()[0][2] < 0.02  # it is on the table, pressing
        assert 800 < peak < 0.8 * wx.EFFORT_LIMIT, peak


def test_sustained_push_is_the_real_drivers_effort_fault():
    """Pressing into the table for 3 ticks over the limit raises the real driver's fault with its one-line reason;
    the next reset() starts a clean episode. (The limit is lowered to 800 mA: at the default 1800 a press with the
    largest actions stays under it, previous test.)"""
    r = WidowXSimRobot(task="reach-block", workspace=LOW_WORKSPACE, effort_limit=800)
    with r:
        r.reset(seed=0)
        with pytest.raises(wx.EffortFault) as e:
            for _ in range(20):
                r.send_action(PRESS)
        assert isinstance(e.value, wx.WidowXFault) and isinstance(e.value, EpisodeFault)
        assert "\n" not in str(e.value)
        assert re.fullmatch(r"joint \w+ effort -?\d+ over the limit 800 for 3 ticks \(collision or overload\?\); stopping",
                            str(e.value))
        r.reset(seed=1)
        r.send_action(np.zeros(7, np.float32))  # the streak starts over


@pytest.mark.parametrize("start", ["measured", "reference"])
def test_each_tick_profile_starts_where_profile_start_says(start, monkeypatch):
    """Held back by the table, the measured joints lag the last target; "measured" starts the next tick's
    profile from them, "reference" from that target (as the driver emulator's xs_sdk does)."""
    starts = []
    real = wx.Profile

    def spy(p0, p1, *rest):
        starts.append(p0)
        return real(p0, p1, *rest)

    r = WidowXSimRobot(task="reach-block", workspace=LOW_WORKSPACE, effort_limit=None, profile_start=start)
    with r:
        r.reset(seed=0)
        for _ in range(3):
            r.send_action(DOWN)
        target, measured = r.last_command.q.copy(), r.joint_positions().copy()
        assert np.abs(target - measured).max() > 1e-3  # the table holds the arm back
        monkeypatch.setattr(wx, "Profile", spy)
        r.send_action(DOWN)
    np.testing.assert_allclose(starts, target if start == "reference" else measured, atol=1e-9)
    with pytest.raises(UserError, match="profile_start"):
        WidowXSimRobot(profile_start="commanded")
    assert WidowXSimRobot().profile_start == "reference"  # as a Dynamixel and the driver emulator do


class PushDown(Backend):
    """Always pushes the EE down and pitches the fingers into the table (a policy that presses into it)."""

    name = "push-down"

    def __init__(self):
        self.meta = BundleMeta(observation=ObservationSpec({"state": ArraySpec((7,), "float32")}), action=wx.ACTION_SPEC,
                               fps=5.0, la_dim=8, inputs=["state"], onnx_sha256="")

    def infer(self, obs):
        return PRESS


def test_effort_fault_fails_its_episode_and_the_evaluation_goes_on(tmp_path):
    r = WidowXSimRobot(task="reach-block", max_steps=12, workspace=LOW_WORKSPACE, effort_limit=800)
    summary = run_loop(r, PushDown(), None, LoopOptions(hz=0, episodes=2, seed=3, continue_after_fault=True))
    assert summary["stop_reason"] == "completed" and len(summary["episodes"]) == 2
    for ep in summary["episodes"]:
        assert ep["success"] is False and ep["fault"].startswith("EffortFault: joint ") and "over the limit 800" in ep["fault"]
    assert summary["success_rate"] == 0.0
    with pytest.raises(wx.EffortFault):  # by default a fault stops the run, as on hardware
        run_loop(WidowXSimRobot(task="reach-block", workspace=LOW_WORKSPACE, effort_limit=800), PushDown(), None,
                 LoopOptions(hz=0, episodes=2))


def test_joint_steps_are_capped_like_the_real_drivers():
    """Both arms send at most 0.9 x the xs_sdk's velocity limit (pi rad/s) over the tick: a big wrist turn is
    spread over ticks in widowx-sim exactly as the driver spreads it (the simulator used to allow 0.8 rad)."""
    assert wx.tick_joint_step(0.2) == pytest.approx(0.9 * np.pi * 0.2)
    r = WidowXSimRobot(task="reach-block", effort_limit=None)
    with r:
        r.reset(seed=0)
        q0 = r.joint_positions()
        r.send_action(np.array([0, 0, 0, -0.25, 0, 0.25, 1.0], np.float32))  # 0.595 rad of wrist with a 0.8 cap
        assert np.abs(r.last_command.q - q0).max() <= wx.tick_joint_step(0.2) + 1e-9


def test_free_space_wrist_turns_stay_under_the_effort_limit():
    """Play's brisk wrist turns touch nothing, so they must not read as an overload: the XL430 on wrist_rotate
    reflects a quarter of the XM430 joints' inertia (with theirs it saturated on ordinary turns)."""
    r = WidowXSimRobot(task="reach-block", max_steps=50)
    with r:
        for seed in range(4):
            rollout(r, play_policy("reach-block", r), seed)  # raises EffortFault on a trip
