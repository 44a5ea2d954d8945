"""What a WidowX action means, shared by our MuJoCo arm (widowx_sim) and the real Interbotix arm.

Action (7-D, one per control tick at FPS = 5 Hz, the Bridge convention):
    0-2  dx, dy, dz        metres, change of the end-effector point, base frame
    3-5  droll, dpitch, dyaw  radians, change of the EE roll/pitch/yaw (kinematics.rpy_to_matrix convention)
    6    gripper           absolute opening, 0 = closed ... 1 = open
Deltas are added to the *measured* EE pose (xyz + dxyz, rpy + drpy), so an action is exactly the
difference of consecutive proprioceptive states for the first six entries. The target pose is
clamped to the Workspace box (position and orientation), solved with the shared IK, and each
joint's change per tick is capped. numpy only (runs on the robot computer).

The observation "state" (7,) float32 is the same on both arms: EE xyz, EE rpy, gripper opening 0..1.

Both arms also share the servos' limits and the effort rule (ARM_SERVOS, joint_efforts, EffortGuard): what
the xs_sdk reports as effort for a joint torque, and when a sustained overload stops the arm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from clamkit.robot import kinematics as kin
from clamkit.robot.base import EpisodeFault
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

log = logging.getLogger(__name__)

FPS = 5.0
# Per-tick bounds: 5 cm and ~14 deg per 0.2 s (0.25 m/s, 1.25 rad/s) - brisk but safe for a wx250s.
ACTION_SPEC = ActionSpec(dim=7, low=(-0.05,) * 3 + (-0.25,) * 3 + (0.0,), high=(0.05,) * 3 + (0.25,) * 3 + (1.0,),
                         semantics="ee_delta_xyz_rpy+gripper")
OBSERVATION_SPEC = ObservationSpec({"state": ArraySpec((7,), "float32")})
STATE_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")

# Joint poses (rad; waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate).
# HOME: ready pose above the middle of the workspace, EE at (0.30, 0, 0.20), gripper pitched 1.2 rad down.
HOME = np.array([0.0, -0.2233, 0.2940, 0.0, 1.1293, 0.0])
# SLEEP: Interbotix's folded rest pose for the wx250s (the arm rests on its cradle).
SLEEP = np.array([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])
# The largest change of any joint per tick (rad; 4 rad/s, about the XM430 servos' top speed): a far IK
# branch switch, or a big wrist swing near the wrist singularity, is spread over several ticks.
MAX_JOINT_STEP = 0.8
# The xs_sdk's joint_velocity_limits for every wx250s arm joint (rad/s, its URDF): Interbotix refuses a command
# faster than that, so the real driver sends at most VELOCITY_MARGIN of it per tick (WidowXConfig.velocity_margin).
JOINT_VELOCITY_LIMIT = np.pi
VELOCITY_MARGIN = 0.9


def joint_steps(moving_time: float, max_joint_step: float = MAX_JOINT_STEP, vmax=JOINT_VELOCITY_LIMIT,
                margin: float = VELOCITY_MARGIN) -> np.ndarray:
    """Each arm joint's largest change per tick that the real driver sends (6,): max_joint_step, and no more than
    `margin` of that joint's velocity limit over moving_time."""
    return np.minimum(max_joint_step, margin * np.broadcast_to(np.asarray(vmax, float), (6,)) * moving_time)


def tick_joint_step(moving_time: float, max_joint_step: float = MAX_JOINT_STEP, vmax=JOINT_VELOCITY_LIMIT,
                    margin: float = VELOCITY_MARGIN) -> float:
    """The largest change of any joint per tick that the real driver sends (and widowx-sim, so both move alike):
    the smallest of joint_steps (0.565 rad at 5 Hz)."""
    return float(joint_steps(moving_time, max_joint_step, vmax, margin).min())


# ----------------------------------------------------------------------------- servos and effort

@dataclass(frozen=True)
class Servo:
    """A Dynamixel model at 12 V, from its ROBOTIS e-Manual specification table."""

    model: str
    stall_torque: float    # N m
    stall_current: float   # A
    no_load_speed: float   # rad/s (e-Manual rpm x 2 pi / 60)
    current_sensor: bool   # XM430: Present_Current (mA); XL430: only Present_Load (0.1 % of stall torque)


XM430_W350 = Servo("XM430-W350", 4.1, 2.3, 46 * 2 * np.pi / 60, True)
XL430_W250 = Servo("XL430-W250", 1.5, 1.4, 61 * 2 * np.pi / 60, False)
# The wx250s' servos per arm joint (Interbotix: interbotix_xsarms_docs servos_wx250s.csv, motor config
# interbotix_xsarm_control/config/wx250s.yaml): shoulder and elbow each drive two XM430-W350 (the primary and a
# "shadow" motor that mirrors it, sharing the load), wrist_rotate an XL430-W250, the rest one XM430-W350.
ARM_SERVOS: tuple[tuple[Servo, int], ...] = ((XM430_W350, 1), (XM430_W350, 2), (XM430_W350, 2), (XM430_W350, 1),
                                            (XM430_W350, 1), (XL430_W250, 1))
POSITION_P_GAIN = 800  # the servos' Position_P_Gain as the xs_sdk leaves it (the factory default; I and D gains 0)
PWM_LIMIT = 885        # full PWM (the X series' PWM_Limit register)


def servo_gains(p_gain: float = POSITION_P_GAIN) -> tuple[np.ndarray, np.ndarray]:
    """Each arm joint's position stiffness kp (N m/rad) and damping kv (N m s/rad), as its servos behave in
    position mode. The X series' position loop outputs PWM = (p_gain / 128) x the error in encoder pulses
    (4096 a turn), so full PWM -- the stall torque at rest -- takes 885 / (p_gain / 128) pulses, 0.22 rad at
    P 800: kp = stall torque / that angle, per motor. The D gain is 0; what damps the joint is the motor's
    back-EMF, the slope of its torque-speed line: kv = stall torque / no-load speed. Tied motors add up."""
    full_pwm_angle = PWM_LIMIT / (p_gain / 128) * 2 * np.pi / 4096
    kp = np.array([s.stall_torque * n / full_pwm_angle for s, n in ARM_SERVOS])
    kv = np.array([s.stall_torque * n / s.no_load_speed for s, n in ARM_SERVOS])
    return kp, kv


STALL_TORQUE = np.array([s.stall_torque * n for s, n in ARM_SERVOS])  # (6,) N m: the most each joint can exert
CURRENT_UNIT = 2.69  # mA per Present_Current unit (XM430), the unit xs_sdk converts every effort register with
EFFORT_LIMIT = 1800.0  # mA: the real driver's default overload threshold (config_widowx.WidowXConfig.effort_limit)
EFFORT_FAULT_TICKS = 3  # consecutive overloaded ticks that make a fault (WidowXConfig.effort_fault_ticks)


def joint_efforts(torque) -> np.ndarray:
    """What the xs_sdk's joint_states.effort reads (mA) when the arm joints exert `torque` (6,) N m, gravity load
    included. An XM430 joint reports its primary motor's Present_Current: the torque shared evenly by its motors,
    over the torque constant (stall torque / stall current, 1.78 N m/A). The XL430 has no current sensor; the
    xs_sdk reads the same register address, which on an XL430 is Present_Load (0.1 % of the stall torque), and
    converts it with the XM current unit, so its "mA" are load permille x 2.69 (2690 at stall)."""
    tau = np.asarray(torque, dtype=float)
    out = np.empty(len(ARM_SERVOS))
    for i, (servo, n) in enumerate(ARM_SERVOS):
        per_motor = tau[i] / n
        if servo.current_sensor:
            out[i] = per_motor / (servo.stall_torque / servo.stall_current) * 1e3
        else:
            out[i] = per_motor / servo.stall_torque * 1e3 * CURRENT_UNIT
    return out


class WidowXFault(RuntimeError):
    """The arm is in a state where sending more commands is unsafe (overload, commands refused)."""


class EffortFault(WidowXFault, EpisodeFault):
    """A joint's effort stayed over the limit (pressing into something): the arm is stopped. The arm itself is
    fine, so an evaluation may count the episode as failed and start the next one."""


class EffortGuard:
    """The effort rule of both arms: |effort| over `limit` (mA) on any joint for `ticks` consecutive control
    ticks is an EffortFault (a single spike, e.g. on a direction change, is normal). The real driver feeds it
    the joint states' efforts, widowx-sim joint_efforts() of its actuators; limit None turns it off."""

    def __init__(self, limit: float | None = EFFORT_LIMIT, ticks: int = EFFORT_FAULT_TICKS):
        self.limit, self.ticks = limit, int(ticks)
        self.streak = 0

    def reset(self) -> None:
        self.streak = 0

    def check(self, effort) -> None:
        """One tick's efforts (6,) or None (no reading); raises EffortFault on the `ticks`-th overloaded tick in a row."""
        if self.limit is None or effort is None:
            return
        effort = np.asarray(effort, dtype=float)
        if not (np.abs(effort) > self.limit).any():
            self.streak = 0
            return
        self.streak += 1
        worst = int(np.argmax(np.abs(effort)))
        log.warning("joint %s effort %.0f over the limit %.0f (%d tick(s) in a row)", kin.JOINT_NAMES[worst],
                    effort[worst], self.limit, self.streak)
        if self.streak >= self.ticks:
            raise EffortFault(f"joint {kin.JOINT_NAMES[worst]} effort {effort[worst]:.0f} over the limit {self.limit:.0f} "
                              f"for {self.streak} ticks (collision or overload?); stopping")


@dataclass(frozen=True)
class Workspace:
    """Box the end-effector target is clamped to: position (m, base frame) and roll/pitch/yaw (rad).

    Defaults: a tabletop region (z = 0 is the surface the robot stands on) whose every corner the
    wx250s reaches with the gripper facing outward and pitched anywhere from 0.4 to 1.2 rad down
    (tests/robot/test_kinematics.py checks); the steepest pitch, 1.45, misses the far top corners by
    ~2 cm, where the IK does its best. Pitch stays below pi/2 so roll/pitch/yaw never hit gimbal lock.
    """

    low: tuple[float, float, float] = (0.18, -0.22, 0.02)
    high: tuple[float, float, float] = (0.40, 0.22, 0.25)
    rpy_low: tuple[float, float, float] = (-0.6, 0.4, -1.2)
    rpy_high: tuple[float, float, float] = (0.6, 1.45, 1.2)

    def __post_init__(self):
        for name in ("low", "high", "rpy_low", "rpy_high"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != 3 or not all(np.isfinite(v)):
                raise ValueError(f"Workspace.{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        if any(lo >= hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"Workspace.low {self.low} must be below Workspace.high {self.high}")
        if any(lo > hi for lo, hi in zip(self.rpy_low, self.rpy_high)):
            raise ValueError(f"Workspace.rpy_low {self.rpy_low} must not exceed rpy_high {self.rpy_high}")
        if not (-np.pi / 2 < self.rpy_low[1] and self.rpy_high[1] < np.pi / 2):
            raise ValueError("Workspace pitch bounds must stay inside (-pi/2, pi/2) (gimbal lock)")

    def clamp_xyz(self, xyz) -> np.ndarray:
        return np.clip(np.asarray(xyz, dtype=float), self.low, self.high)

    def clamp_rpy(self, rpy) -> np.ndarray:
        return np.clip(kin.wrap_angle(np.asarray(rpy, dtype=float)), self.rpy_low, self.rpy_high)

    def contains(self, xyz, tol: float = 0.0) -> bool:
        xyz = np.asarray(xyz, dtype=float)
        return bool(np.all(xyz >= np.asarray(self.low) - tol) and np.all(xyz <= np.asarray(self.high) + tol))

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.low) + np.asarray(self.high)) / 2

    def to_json(self) -> dict:
        return {k: list(getattr(self, k)) for k in ("low", "high", "rpy_low", "rpy_high")}

    @classmethod
    def from_json(cls, d: dict) -> "Workspace":
        return cls(**{k: tuple(v) for k, v in d.items()})


DEFAULT_WORKSPACE = Workspace()


# ----------------------------------------------------------------------------- gripper

@dataclass
class Profile:
    """One joint's time-based profile, as xs_sdk's (profile_type "time") drives a Dynamixel: from p0 at t0
    to p1, taking T s with ta s ramps (trapezoidal velocity). The emulator runs one per servo; widowx-sim
    feeds each tick's joint target to its servos along one, so both move the arm as the real driver does."""

    p0: float
    p1: float
    t0: float
    T: float
    ta: float

    def at(self, t: float) -> float:
        s, D = t - self.t0, self.p1 - self.p0
        if s >= self.T or self.T <= 0:
            return self.p1
        if s <= 0:
            return self.p0
        ta = min(self.ta, self.T / 2)
        if ta <= 0:
            return self.p0 + D * s / self.T
        v = D / (self.T - ta)  # cruise velocity
        if s < ta:
            return self.p0 + 0.5 * v / ta * s * s
        if s <= self.T - ta:
            return self.p0 + v * (s - ta / 2)
        return self.p1 - 0.5 * v / ta * (self.T - s) ** 2


def gripper_to_finger(g: float) -> float:
    """Opening 0 (closed) .. 1 (open) -> left-finger slide position (m); the right finger mirrors it."""
    return kin.FINGER_CLOSED + float(np.clip(g, 0.0, 1.0)) * (kin.FINGER_OPEN - kin.FINGER_CLOSED)


def finger_to_gripper(finger: float) -> float:
    """Left-finger position (m) -> opening 0..1."""
    return float(np.clip((finger - kin.FINGER_CLOSED) / (kin.FINGER_OPEN - kin.FINGER_CLOSED), 0.0, 1.0))


def make_state(q, gripper: float) -> np.ndarray:
    """The 7-D proprioceptive state from the 6 arm joints and the gripper opening."""
    xyz, rpy = kin.ee_pose(q)
    return np.concatenate([xyz, rpy, [gripper]]).astype(np.float32)


# ----------------------------------------------------------------------------- action -> joints

@dataclass
class JointCommand:
    """The result of applying one action: joint targets to send, and how they were obtained."""

    q: np.ndarray          # (6,) arm joint targets, within limits, at most MAX_JOINT_STEP from the current joints
    gripper: float         # commanded opening 0..1
    finger: float          # left-finger target (m); the right finger gets -finger
    xyz: np.ndarray        # clamped EE position target
    rpy: np.ndarray        # clamped EE orientation target
    action: np.ndarray     # (7,) float32, the action as applied: bounds-clipped, deltas shrunk by the workspace clamp
    ik: kin.IKResult = field(repr=False)


def target_pose(xyz, rpy, action, workspace: Workspace = DEFAULT_WORKSPACE) -> tuple[np.ndarray, np.ndarray]:
    """Measured EE pose + action deltas, clamped to the workspace."""
    a = np.asarray(action, dtype=float)
    return workspace.clamp_xyz(np.asarray(xyz) + a[:3]), workspace.clamp_rpy(np.asarray(rpy) + a[3:6])


def clamp_action(action, xyz, rpy, workspace: Workspace = DEFAULT_WORKSPACE,
                 spec: ActionSpec = ACTION_SPEC) -> np.ndarray:
    """The action, clipped to its bounds, whose target stays inside the workspace (for a safety layer)."""
    a = np.clip(np.asarray(action, dtype=np.float64), spec.low, spec.high)
    txyz, trpy = target_pose(xyz, rpy, a, workspace)
    out = a.copy()
    out[:3] = txyz - np.asarray(xyz)
    out[3:6] = kin.wrap_angle(trpy - np.asarray(rpy))
    return np.clip(out, spec.low, spec.high).astype(np.float32)


def action_to_joint_command(q, action, workspace: Workspace = DEFAULT_WORKSPACE,
                            max_joint_step: float = MAX_JOINT_STEP) -> JointCommand:
    """Apply one 7-D action at the current arm joints `q`: measured EE pose + deltas -> workspace clamp
    -> IK (seeded with q, so the arm stays on its branch) -> per-tick joint step cap.

    When the clamped target is out of reach, the IK's best effort is sent (check .ik.success): the arm
    moves as close as it can instead of freezing.
    """
    q = np.asarray(q, dtype=float)
    a = np.clip(np.asarray(action, dtype=float), ACTION_SPEC.low, ACTION_SPEC.high)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"non-finite action {a}")
    xyz, rpy = kin.ee_pose(q)
    txyz, trpy = target_pose(xyz, rpy, a, workspace)
    ik = kin.solve_ik(txyz, trpy, q0=q, restarts=0)  # no random restarts: stay on the current branch
    dq = ik.q - q
    biggest = float(np.max(np.abs(dq)))
    if biggest > max_joint_step:
        dq *= max_joint_step / biggest
    g = float(a[6])
    applied = np.concatenate([txyz - xyz, kin.wrap_angle(trpy - rpy), [g]]).astype(np.float32)
    return JointCommand(q=q + dq, gripper=g, finger=gripper_to_finger(g), xyz=txyz, rpy=trpy, action=applied, ik=ik)
