"""wx250s kinematics (numpy only), the shared WidowX action semantics, and the MJCF that must match them."""

import numpy as np
import pytest

from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx

# Interbotix's published modern_robotics description of the wx250s (interbotix_xs_modules mr_descriptions).
INTERBOTIX_M = np.array([[1.0, 0.0, 0.0, 0.458325], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.36065], [0, 0, 0, 1]])
INTERBOTIX_SLIST = np.array([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                             [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],
                             [0.0, 1.0, 0.0, -0.36065, 0.0, 0.04975],
                             [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
                             [0.0, 1.0, 0.0, -0.36065, 0.0, 0.29975],
                             [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0]]).T


def random_q(rng, n):
    return rng.uniform(kin.JOINT_LOWER, kin.JOINT_UPPER, size=(n, 6))


def random_workspace_poses(rng, n, ws=wx.DEFAULT_WORKSPACE):
    """Positions anywhere in the workspace; orientations near the arm's plane, pitched 0.4-1.3 rad down."""
    xyz = rng.uniform(ws.low, ws.high, size=(n, 3))
    rpy = np.stack([rng.uniform(-0.3, 0.3, n), rng.uniform(0.4, 1.3, n),
                    np.arctan2(xyz[:, 1], xyz[:, 0]) + rng.uniform(-0.3, 0.3, n)], axis=1)
    return xyz, rpy


def test_zero_pose_matches_the_public_description():
    xyz, rpy = kin.ee_pose(np.zeros(6))
    assert np.abs(xyz - [0.458325, 0.0, 0.36065]).max() < 1e-3
    assert np.allclose(rpy, 0.0)


def test_screw_axes_match_interbotix_and_poe_agrees_with_the_chain():
    M, S = kin.screw_axes()
    assert np.allclose(M, INTERBOTIX_M) and np.allclose(S, INTERBOTIX_SLIST)

    def exp6(s, theta):  # exp([S] theta) for a revolute screw axis s = [w; v]
        w, v = s[:3], s[3:]
        K = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
        T = np.eye(4)
        T[:3, :3] = kin.rot_axis(w, theta)
        T[:3, 3] = (np.eye(3) * theta + (1 - np.cos(theta)) * K + (theta - np.sin(theta)) * K @ K) @ v
        return T

    for q in random_q(np.random.default_rng(0), 5):
        T = np.eye(4)
        for i in range(6):
            T = T @ exp6(S[:, i], q[i])
        assert np.allclose(T @ M, kin.fk(q), atol=1e-9)


def test_rpy_round_trip_and_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    for rpy in rng.uniform([-3, -1.5, -3], [3, 1.5, 3], size=(20, 3)):
        assert np.allclose(kin.matrix_to_rpy(kin.rpy_to_matrix(rpy)), rpy, atol=1e-9)
    q, eps = random_q(rng, 1)[0], 1e-6
    J, T0 = kin.jacobian(q), kin.fk(q)
    for i in range(6):
        dq = np.zeros(6)
        dq[i] = eps
        T1 = kin.fk(q + dq)
        assert np.allclose((T1[:3, 3] - T0[:3, 3]) / eps, J[:3, i], atol=1e-5)
        assert np.allclose(kin.rotation_log(T1[:3, :3] @ T0[:3, :3].T) / eps, J[3:, i], atol=1e-5)


def test_ik_reaches_random_workspace_targets():
    rng = np.random.default_rng(2)
    xyz, rpy = random_workspace_poses(rng, 20)
    worst_pos, worst_rot = 0.0, 0.0
    for p, r in zip(xyz, rpy):
        res = kin.solve_ik(p, r, q0=wx.HOME)
        assert res.success, (p, r, res)
        assert np.all(res.q >= kin.JOINT_LOWER) and np.all(res.q <= kin.JOINT_UPPER)
        got_p, got_r = kin.ee_pose(res.q)  # check with FK, not with the solver's own residual
        worst_pos = max(worst_pos, np.linalg.norm(got_p - p))
        worst_rot = max(worst_rot, np.linalg.norm(kin.rotation_log(kin.rpy_to_matrix(r) @ kin.rpy_to_matrix(got_r).T)))
    assert worst_pos < 5e-3 and worst_rot < 0.02
    print(f"IK over 20 workspace targets: worst position error {worst_pos * 1e3:.3f} mm, rotation {worst_rot:.4f} rad")


def test_ik_position_only_and_unreachable_target_reports_failure():
    res = kin.solve_ik([0.3, 0.1, 0.1])
    assert res.success and np.linalg.norm(kin.ee_pose(res.q)[0] - [0.3, 0.1, 0.1]) < 1e-3
    far = kin.solve_ik([1.0, 0.0, 0.2], restarts=1)
    assert not far.success and far.pos_err > 0.3  # 1 m is beyond the ~0.66 m reach: best effort, flagged


@pytest.mark.parametrize("pitch", [0.4, 0.8, 1.2])
def test_workspace_corners_are_reachable(pitch):
    ws = wx.DEFAULT_WORKSPACE
    for x in (ws.low[0], ws.high[0]):
        for y in (ws.low[1], 0.0, ws.high[1]):
            for z in (ws.low[2], ws.high[2]):
                res = kin.solve_ik([x, y, z], [0.0, pitch, np.arctan2(y, x)], q0=wx.HOME)
                assert res.success, ((x, y, z), res)


def test_home_pose_is_inside_the_workspace():
    xyz, rpy = kin.ee_pose(wx.HOME)
    assert np.allclose(xyz, [0.30, 0.0, 0.20], atol=1e-3) and abs(rpy[1] - 1.2) < 1e-3
    assert wx.DEFAULT_WORKSPACE.contains(xyz)
    assert np.all(wx.SLEEP >= kin.JOINT_LOWER) and np.all(wx.SLEEP <= kin.JOINT_UPPER)


def test_workspace_validates_its_fields():
    with pytest.raises(ValueError, match="low"):
        wx.Workspace(low=(0.5, 0, 0), high=(0.4, 1, 1))
    with pytest.raises(ValueError, match="gimbal"):
        wx.Workspace(rpy_high=(0.5, 1.6, 1.0))
    ws = wx.Workspace()
    assert wx.Workspace.from_json(ws.to_json()) == ws


def test_action_moves_the_ee_by_its_delta_and_zero_holds():
    q = wx.HOME
    xyz, rpy = kin.ee_pose(q)
    hold = wx.action_to_joint_command(q, [0, 0, 0, 0, 0, 0, 1.0])
    assert np.abs(hold.q - q).max() < 1e-3 and hold.finger == kin.FINGER_OPEN
    a = np.array([0.03, -0.02, 0.04, 0.1, -0.1, 0.15, 0.0])
    cmd = wx.action_to_joint_command(q, a)
    got_xyz, got_rpy = kin.ee_pose(cmd.q)
    assert cmd.ik.success and np.linalg.norm(got_xyz - (xyz + a[:3])) < 1e-3
    assert np.allclose(got_rpy, rpy + a[3:6], atol=0.01) and cmd.finger == kin.FINGER_CLOSED


def test_targets_outside_the_workspace_are_clamped():
    ws = wx.DEFAULT_WORKSPACE
    q = kin.solve_ik([ws.high[0] - 0.01, 0.0, ws.low[2] + 0.01], [0, 1.2, 0], q0=wx.HOME).q
    cmd = wx.action_to_joint_command(q, [0.05, 0, -0.05, 0, 0.25, 0, 1])
    assert np.allclose(cmd.xyz[[0, 2]], [ws.high[0], ws.low[2]]) and cmd.rpy[1] <= ws.rpy_high[1]
    xyz, rpy = kin.ee_pose(q)
    safe = wx.clamp_action([0.05, 0, -0.05, 0, 0, 0, 1], xyz, rpy, ws)
    assert np.allclose(xyz[[0, 2]] + safe[[0, 2]], [ws.high[0], ws.low[2]], atol=1e-6)


def test_mjcf_matches_the_kinematics():
    mujoco = pytest.importorskip("mujoco")
    from clamkit.robot.widowx_sim import SCENE_XML

    model = mujoco.MjModel.from_xml_path(str(SCENE_XML.with_name("wx250s.xml")))
    data = mujoco.MjData(model)
    adr = [model.joint(n).qposadr[0] for n in kin.JOINT_NAMES]
    for i, n in enumerate(kin.JOINT_NAMES):
        assert np.allclose(model.joint(n).range, [kin.JOINT_LOWER[i], kin.JOINT_UPPER[i]])
    assert np.allclose(model.joint("left_finger").range, [kin.FINGER_CLOSED, kin.FINGER_OPEN])
    assert (model.body_mass[1:] > 0).all()
    for q in np.vstack([np.zeros(6), wx.HOME, random_q(np.random.default_rng(3), 6)]):
        data.qpos[adr] = q
        mujoco.mj_kinematics(model, data)
        T = kin.fk(q)
        assert np.linalg.norm(data.site("ee").xpos - T[:3, 3]) < 1e-3
        assert np.allclose(data.site("ee").xmat.reshape(3, 3), T[:3, :3], atol=1e-6)
