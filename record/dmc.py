"""Scripted expert controllers for dm_control suite tasks and a task-agnostic play policy.

    with DMCRobot("cartpole-swingup") as robot:
        obs = robot.reset(seed=0)              # {"state": float32 (5,)}
        a = expert_policy("cartpole-swingup")(obs)
        robot.send_action(a)

The experts read only the observation vector, through the fixed layout DMCRobot flattens it
into (the task's observation dict in sorted key order); they are controllers a control engineer
would write from the model's published parameters, never peeking at the simulator's state.
"""

from __future__ import annotations

import logging

import numpy as np

from clamkit.errors import UserError
from clamkit.record.play import SEED_OFFSET
from clamkit.record.policy import Policy
from clamkit.robot.dmc import DMCRobot
from clamkit.robot.kinematics import wrap_angle
from clamkit.specs import ActionSpec

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- experts


class ReacherExpert(Policy):
    """Two-link arm: analytic inverse kinematics for the target, then a joint-space PD loop.

    Observation: 0-1 joint angles (shoulder, wrist), 2-3 target minus fingertip (xy, world frame),
    4-5 joint velocities. Links are 0.12 m each; the shoulder sits at the origin. Of the two
    elbow solutions it takes the one on the wrist's current side, so it never swings through
    the straight-arm singularity.
    """

    L1, L2 = 0.12, 0.12
    WRIST_LIMIT = np.deg2rad(160)

    def __init__(self, kp: float = 12.0, kd: float = 0.6):
        self.kp, self.kd = kp, kd

    def fingertip(self, q):
        return np.array([self.L1 * np.cos(q[0]) + self.L2 * np.cos(q[0] + q[1]),
                         self.L1 * np.sin(q[0]) + self.L2 * np.sin(q[0] + q[1])])

    def inverse_kinematics(self, target, wrist_now: float):
        r2 = float(target @ target)
        c2 = np.clip((r2 - self.L1**2 - self.L2**2) / (2 * self.L1 * self.L2), -1.0, 1.0)
        q2 = np.arccos(c2) * (1.0 if wrist_now >= 0 else -1.0)
        q2 = np.clip(q2, -self.WRIST_LIMIT, self.WRIST_LIMIT)
        q1 = np.arctan2(target[1], target[0]) - np.arctan2(self.L2 * np.sin(q2), self.L1 + self.L2 * np.cos(q2))
        return np.array([q1, q2])

    def __call__(self, obs):
        s = np.asarray(obs["state"], dtype=np.float64)
        q, to_target, qd = s[0:2], s[2:4], s[4:6]
        goal = self.inverse_kinematics(self.fingertip(q) + to_target, q[1])
        err = np.array([wrap_angle(goal[0] - q[0]), goal[1] - q[1]])  # the shoulder turns freely
        return np.clip(self.kp * err - self.kd * qd, -1, 1).astype(np.float32)


class PointMassExpert(Policy):
    """PD to the origin, where the target sits. Observation: 0-1 position, 2-3 velocity.
    The easy task actuates x and y directly; the reward also prefers small controls."""


    def __init__(self, kp: float = 20.0, kd: float = 1.0):
        self.kp, self.kd = kp, kd

    def __call__(self, obs):
        s = np.asarray(obs["state"], dtype=np.float64)
        return np.clip(-self.kp * s[0:2] - self.kd * s[2:4], -1, 1).astype(np.float32)


def dlqr(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: float, iters: int = 10000) -> np.ndarray:
    """Discrete-time LQR gain K (u = -K x, single input) by iterating the Riccati equation; numpy only."""
    P = Q.copy()
    for i in range(iters):
        BtP = B.T @ P
        K = np.linalg.solve(R + BtP @ B, BtP @ A)  # (1, n)
        P_next = Q + A.T @ P @ (A - B @ K)
        if np.abs(P_next - P).max() <= 1e-9 * np.abs(P).max():
            break
        P = P_next
    log.debug("dlqr converged in %d iterations", i + 1)
    return K[0]


class CartpoleExpert(Policy):
    """Energy-shaping swing-up (Astrom & Furuta) with cart centring, then LQR balance near upright.

    Observation: 0 cart x, 1 cos(theta), 2 sin(theta) (theta = 0 upright), 3 cart velocity,
    4 pole angular velocity. Model (cartpole.xml): cart 1 kg, pole 0.1 kg with its centre of
    mass 0.5 m above the hinge and inertia 0.00942 kg m^2 about it, force = 10 * action,
    control step 0.01 s.
    """

    M, m, l, I_cm, g, gear, dt = 1.0, 0.1, 0.5, 0.00942, 9.81, 10.0, 0.01

    def __init__(self, k_energy: float = 10.0, k_centre: float = 0.3, catch_cos: float = 0.9):
        self.k_energy, self.k_centre, self.catch_cos = k_energy, k_centre, catch_cos
        self.J = self.I_cm + self.m * self.l**2  # pole inertia about the hinge
        self.K = self._lqr_gain()

    def _lqr_gain(self) -> np.ndarray:
        """Linearise about upright, state (x, theta, x_dot, theta_dot), discretise, solve LQR."""
        M, m, l, J, g = self.M, self.m, self.l, self.J, self.g
        mass = np.array([[M + m, m * l], [m * l, J]])  # mass matrix; rhs = (F, m g l theta)
        inv = np.linalg.inv(mass)
        A = np.zeros((4, 4))
        A[0:2, 2:4] = np.eye(2)
        A[2:4, 1] = inv @ np.array([0.0, m * g * l])
        B = np.zeros((4, 1))
        B[2:4, 0] = inv @ np.array([self.gear, 0.0])
        Ad = np.eye(4) + A * self.dt + A @ A * self.dt**2 / 2  # expm(A dt), to second order
        Bd = (np.eye(4) * self.dt + A * self.dt**2 / 2) @ B
        return dlqr(Ad, Bd, Q=np.diag([2.0, 20.0, 0.5, 0.5]), R=1.0)  # angle weighted most

    def __call__(self, obs):
        s = np.asarray(obs["state"], dtype=np.float64)
        x, c, sn, xd, thd = s[0], s[1], s[2], s[3], s[4]
        if c > self.catch_cos:
            u = -self.K @ np.array([x, np.arctan2(sn, c), xd, thd])
        else:
            energy = 0.5 * self.J * thd**2 + self.m * self.g * self.l * (c - 1.0)  # 0 at upright rest
            # dE/dt = -m l cos(theta) theta_dot x_ddot: push against theta_dot cos(theta) while E < 0.
            pump = np.clip(self.k_energy * energy * np.sign(thd * c + 1e-9), -1.0, 1.0)
            u = pump - self.k_centre * (x + 0.5 * xd)  # keep the cart off the rails at +-1.8 m
        return np.clip([u], -1, 1).astype(np.float32)


class PendulumExpert(Policy):
    """Energy pumping with a torque-limited motor, then a PD catch near the top.

    Observation: 0 cos(theta), 1 sin(theta) (theta = 0 upright), 2 angular velocity. Model
    (pendulum.xml): 1 kg at 0.5 m, hinge damping 0.1, torque = action in [-1, 1] N m -- about a
    fifth of what gravity can exert, so the pole must be pumped up over several swings
    and the PD can hold it only within ~12 degrees of vertical.
    """

    m, l, g, damping = 1.0, 0.5, 9.81, 0.1

    def __init__(self, k_energy: float = 5.0, kp: float = 15.0, kd: float = 1.5, catch_cos: float = 0.95):
        self.k_energy, self.kp, self.kd, self.catch_cos = k_energy, kp, kd, catch_cos
        self.J = self.m * self.l**2 + 0.4 * self.m * 0.05**2  # point mass plus the sphere's own inertia

    def __call__(self, obs):
        s = np.asarray(obs["state"], dtype=np.float64)
        c, sn, w = s[0], s[1], s[2]
        if c > self.catch_cos:
            u = -self.kp * np.arctan2(sn, c) - self.kd * w
        else:
            energy = 0.5 * self.J * w**2 + self.m * self.g * self.l * (c - 1.0)  # 0 at upright rest
            # At rest (every episode starts so) push the way gravity pulls; at the very bottom, either way.
            direction = np.sign(w) if abs(w) > 1e-3 else (np.sign(sn) or 1.0)
            u = -self.k_energy * energy * direction + self.damping * w  # dE/dt = u w - damping w^2
        return np.clip([u], -1, 1).astype(np.float32)


EXPERTS: dict[str, type[Policy]] = {
    "reacher-easy": ReacherExpert,
    "point_mass-easy": PointMassExpert,
    "cartpole-swingup": CartpoleExpert,
    "pendulum-swingup": PendulumExpert,
}


def expert_policy(task: str) -> Policy:
    """The scripted expert for one of TASKS."""
    if task not in EXPERTS:
        raise UserError(f"no scripted expert for dm_control task '{task}' (have {', '.join(EXPERTS)})")
    return EXPERTS[task]()


# ----------------------------------------------------------------------------- play


class DMCPlay(Policy):
    """Task-agnostic, non-expert labelled data: segments of smoothly wandering random actions,
    constant pushes, pauses, uniform noise and -- now and then -- the task expert, all under
    heavy Gaussian noise. Covers the action space the way a person playing with the robot would,
    so a decoder trained on it generalises, while staying far from expert behaviour.
    """

    MODES = ("smooth", "hold", "pause", "random", "expert")

    def __init__(self, low, high, expert: Policy | None = None, noise: float = 0.3, expert_prob: float = 0.15):
        self.low, self.high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        self.expert, self.noise = expert, float(noise)
        p = np.array([0.4, 0.15, 0.1, 0.35 - (expert_prob if expert else 0.0), expert_prob if expert else 0.0])
        self.probs = p / p.sum()
        self.reset(None)

    def reset(self, seed=None):
        self.rng = np.random.default_rng(None if seed is None else seed + SEED_OFFSET)
        self._left, self._mode = 0, "pause"
        self._a = (self.high + self.low) / 2
        if self.expert is not None:
            self.expert.reset(seed)

    def _new_segment(self):
        r = self.rng
        self._mode = self.MODES[r.choice(len(self.MODES), p=self.probs)]
        self._left = int(r.integers(10, 60))
        self._hold = r.uniform(self.low, self.high)
        self._smoothing = float(r.uniform(0.8, 0.98))  # low-pass factor of the wandering action

    def __call__(self, obs):
        if self._left <= 0:
            self._new_segment()
        self._left -= 1
        r, mid, half = self.rng, (self.high + self.low) / 2, (self.high - self.low) / 2
        if self._mode == "smooth":
            # A low-passed random walk; the x3 keeps its spread near the bounds despite the smoothing.
            self._a = self._smoothing * self._a + (1 - self._smoothing) * (mid + 3 * r.uniform(-half, half))
        elif self._mode == "hold":
            self._a = self._hold
        elif self._mode == "pause":
            self._a = mid  # no torque: the suite's bounds are symmetric
        elif self._mode == "random":
            self._a = r.uniform(self.low, self.high)
        else:
            self._a = np.asarray(self.expert(obs), dtype=np.float64)
        a = self._a + r.normal(0, self.noise, self._a.shape) * half
        return np.clip(a, self.low, self.high).astype(np.float32)


def play_policy(task: str, noise: float = 0.3, action_spec: ActionSpec | None = None,
                expert_prob: float = 0.15) -> Policy:
    """Noisy play for any suite task. For TASKS the expert is mixed in now and then; other tasks
    play without one, within `action_spec` (read from the environment when not given)."""
    expert = expert_policy(task) if task in EXPERTS else None
    if action_spec is None:
        with DMCRobot(task) as robot:  # also rejects an unknown task with the usual message
            action_spec = robot.action_spec
    return DMCPlay(action_spec.low, action_spec.high, expert=expert, noise=noise, expert_prob=expert_prob)
