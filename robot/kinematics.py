"""WidowX 250 6DOF (wx250s) kinematics: forward kinematics, Jacobian and damped-least-squares IK.

numpy only: this module runs on the robot computer (next to the Interbotix driver) as well as in
our MuJoCo simulation, so the simulated arm and the real one turn a 7-D action into joint targets
with the same code.

The chain is the public wx250s description (Interbotix URDF / MuJoCo Menagerie): at q = 0 every
link frame is parallel to the base frame (x forward, y left, z up), the upper arm points up and
the forearm points forward. Each joint i sits at LINK_OFFSETS[i] in its parent link's frame and
turns about JOINT_AXES[i]. The end-effector point ("ee_gripper_link" in Interbotix terms, between
the finger pads) is EE_OFFSET beyond the gripper link, which puts it at (0.458325, 0, 0.36065) at
q = 0. robot/assets/wx250s.xml builds exactly this chain (tests/robot/test_kinematics.py checks).

Orientation is reported as roll, pitch, yaw with R = Rz(yaw) @ Ry(pitch) @ Rx(roll) (fixed-axis
x-y-z, the convention of Interbotix's set_ee_pose_components). Pitch > 0 tips the gripper down;
pitch = pi/2 points it straight down, where roll and yaw become one (gimbal lock) — the shared
workspace (widowx_common.Workspace) keeps pitch below that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")

# Parent-to-joint offsets (m) and joint axes, all expressed in the base frame at q = 0.
LINK_OFFSETS = np.array([
    [0.0, 0.0, 0.072],      # base_link -> shoulder_link   (waist)
    [0.0, 0.0, 0.03865],    # shoulder_link -> upper_arm_link (shoulder)
    [0.04975, 0.0, 0.25],   # upper_arm_link -> upper_forearm_link (elbow)
    [0.175, 0.0, 0.0],      # upper_forearm_link -> lower_forearm_link (forearm_roll)
    [0.075, 0.0, 0.0],      # lower_forearm_link -> wrist_link (wrist_angle)
    [0.065, 0.0, 0.0],      # wrist_link -> gripper_link (wrist_rotate)
])
JOINT_AXES = np.array([
    [0.0, 0.0, 1.0],
    [0.0, 1.0, 0.0],
    [0.0, 1.0, 0.0],
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [1.0, 0.0, 0.0],
])
EE_OFFSET = np.array([0.093575, 0.0, 0.0])  # gripper_link -> ee point between the finger pads

# Joint limits (rad) of the wx250s (Interbotix wx250s config / Menagerie): waist +-180 deg,
# shoulder -108..114, elbow -123..92, forearm_roll +-180, wrist_angle -100..123, wrist_rotate +-180.
JOINT_LOWER = np.array([-3.14158, -1.88496, -2.14675, -3.14158, -1.74533, -3.14158])
JOINT_UPPER = np.array([3.14158, 1.98968, 1.60570, 3.14158, 2.14675, 3.14158])

# Gripper fingers: two prismatic joints, each finger 0.015 m (closed) .. 0.037 m (open) from the centre.
FINGER_CLOSED, FINGER_OPEN = 0.015, 0.037


# ----------------------------------------------------------------------------- rotations

def rot_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about a unit axis (Rodrigues)."""
    x, y, z = axis
    c, s = np.cos(angle), np.sin(angle)
    K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


def rpy_to_matrix(rpy) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def matrix_to_rpy(R: np.ndarray) -> np.ndarray:
    """Inverse of rpy_to_matrix; pitch in [-pi/2, pi/2]. At gimbal lock (|pitch| = pi/2) roll is set to 0."""
    pitch = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    if abs(R[2, 0]) < 1.0 - 1e-9:
        roll = np.arctan2(R[2, 1], R[2, 2])
        yaw = np.arctan2(R[1, 0], R[0, 0])
    else:  # only yaw - sign*roll is defined; put it all in yaw
        roll = 0.0
        yaw = np.arctan2(-R[0, 1], R[1, 1])
    return np.array([roll, pitch, yaw])


def rotation_log(R: np.ndarray) -> np.ndarray:
    """Axis * angle (rad) of a rotation matrix: the rotation vector w with R = exp([w])."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if np.pi - angle < 1e-6:  # 180 deg: the skew part vanishes; take the axis from R + I
        axis = np.sqrt(np.maximum((np.diag(R) + 1.0) / 2.0, 0.0))
        k = int(np.argmax(axis))
        axis = (R[:, k] + np.eye(3)[:, k]) / (2.0 * axis[k])
        return angle * axis / np.linalg.norm(axis)
    return angle * v / (2.0 * np.sin(angle))


def wrap_angle(a):
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


# ----------------------------------------------------------------------------- forward kinematics

def _chain(q) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Walk the chain. Returns joint positions (6, 3), world joint axes (6, 3), EE position (3,), EE rotation (3, 3)."""
    q = np.asarray(q, dtype=float)
    R, p = np.eye(3), np.zeros(3)
    points, axes = np.empty((6, 3)), np.empty((6, 3))
    for i in range(6):
        p = p + R @ LINK_OFFSETS[i]
        points[i], axes[i] = p, R @ JOINT_AXES[i]
        R = R @ rot_axis(JOINT_AXES[i], q[i])
    return points, axes, p + R @ EE_OFFSET, R


def fk(q) -> np.ndarray:
    """4x4 pose of the end-effector point in the base frame."""
    _, _, p, R = _chain(q)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, p
    return T


def ee_pose(q) -> tuple[np.ndarray, np.ndarray]:
    """(xyz, rpy) of the end-effector point for 6 arm joint angles."""
    _, _, p, R = _chain(q)
    return p, matrix_to_rpy(R)


def jacobian(q) -> np.ndarray:
    """Geometric Jacobian (6, 6) in the base frame: rows 0-2 linear velocity of the EE point, 3-5 angular velocity."""
    points, axes, p, _ = _chain(q)
    J = np.empty((6, 6))
    J[:3] = np.cross(axes, p - points).T  # (3, 6)
    J[3:] = axes.T                        # (3, 6)
    return J


def screw_axes() -> tuple[np.ndarray, np.ndarray]:
    """Product-of-exponentials form (M, Slist) as in Interbotix's modern_robotics descriptions:
    M is the EE pose at q = 0, Slist (6, 6) holds the space-frame screw axes [w; v] as columns."""
    points, axes, p, R = _chain(np.zeros(6))
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, p
    S = np.concatenate([axes, -np.cross(axes, points)], axis=1).T  # (6, 6), column i = [w_i; -w_i x p_i]
    return M, S


def joint_limits() -> tuple[np.ndarray, np.ndarray]:
    return JOINT_LOWER.copy(), JOINT_UPPER.copy()


# ----------------------------------------------------------------------------- inverse kinematics

@dataclass
class IKResult:
    """What solve_ik found: joint angles within limits, whether they meet the tolerances, and the residuals."""

    q: np.ndarray
    success: bool
    pos_err: float   # metres, |target xyz - fk xyz|
    rot_err: float   # radians, angle of R_target R^T (0 when orientation was not asked for)
    iters: int


def solve_ik(xyz, rpy=None, q0=None, *, pos_tol: float = 1e-3, rot_tol: float = 1e-2, max_iters: int = 150,
             damping: float = 0.02, rot_weight: float = 0.5, max_step: float = 0.3, restarts: int = 4,
             seed: int = 0) -> IKResult:
    """Joint angles that put the EE point at `xyz` (and, if given, the orientation `rpy`).

    Damped least squares on the geometric Jacobian, projected onto the joint limits after each step:
        dq = J^T (J J^T + damping^2 I)^-1 e,   e = [xyz error; rot_weight * rotation-vector error]
    starting from q0 (the current joints, so consecutive solutions stay on one branch). When that
    does not converge it restarts from a few seeded random configurations and keeps the best.
    Position-only when rpy is None (3 rows). Always returns the best q found; check .success.
    """
    target_p = np.asarray(xyz, dtype=float)
    target_R = None if rpy is None else rpy_to_matrix(rpy)
    lo, hi = JOINT_LOWER, JOINT_UPPER
    q_start = np.zeros(6) if q0 is None else np.clip(np.asarray(q0, dtype=float), lo, hi)
    rng = np.random.default_rng(seed)
    best, total = None, 0
    for attempt in range(restarts + 1):
        q = q_start if attempt == 0 else rng.uniform(0.6 * lo, 0.6 * hi)
        for it in range(max_iters + 1):  # the last pass only measures the final q
            points, axes, p, R = _chain(q)
            e_p = target_p - p
            pos_err = float(np.linalg.norm(e_p))
            if target_R is None:
                rot_err, e = 0.0, e_p
            else:
                e_w = rotation_log(target_R @ R.T)
                rot_err = float(np.linalg.norm(e_w))
                e = np.concatenate([e_p, rot_weight * e_w])
            if (pos_err < pos_tol and rot_err < rot_tol) or it == max_iters:
                break
            J = np.empty((6, 6))
            J[:3] = np.cross(axes, p - points).T
            J[3:] = rot_weight * axes.T
            if target_R is None:
                J = J[:3]
            dq = J.T @ np.linalg.solve(J @ J.T + damping**2 * np.eye(len(e)), e)
            n = np.linalg.norm(dq)
            if n > max_step:
                dq *= max_step / n
            q = np.clip(q + dq, lo, hi)
        total += it
        result = IKResult(q=q, success=pos_err < pos_tol and rot_err < rot_tol, pos_err=pos_err,
                          rot_err=rot_err, iters=total)
        if best is None or _score(result, rot_weight) < _score(best, rot_weight):
            best = result
        if best.success:
            break
    best.iters = total
    return best


def _score(r: IKResult, rot_weight: float) -> float:
    return r.pos_err + rot_weight * r.rot_err
