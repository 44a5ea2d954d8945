"""dm_control suite tasks as a Robot, scripted expert controllers, and a task-agnostic play policy.

    with DMCRobot("cartpole-swingup") as robot:
        obs = robot.reset(seed=0)              # {"state": float32 (5,)}
        a = expert_policy("cartpole-swingup")(obs)
        robot.send_action(a)

Facts this relies on (dm-control 1.0.28 / mujoco 3.3.0): every suite task draws its initial
state from `env.task.random`, a numpy RandomState, so re-seeding it in place before `reset()`
gives the same episode as a freshly loaded env with `task_kwargs={"random": seed}` (a test
checks this) without reloading the model or losing the render context. The benchmark tasks'
time limit is 1000 control steps with a per-step reward in [0, 1]: returns lie in [0, 1000].

The experts read only the observation vector, through the fixed layout DMCRobot flattens it
into (the task's observation dict in sorted key order); they are controllers a control engineer
would write from the model's published parameters, never peeking at the simulator's state.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np

from clamkit.errors import UserError, require
from clamkit.robot.base import DeviceNotConnectedError, Policy, Robot
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

log = logging.getLogger(__name__)

TASKS = ("reacher-easy", "point_mass-easy", "cartpole-swingup", "pendulum-swingup")
EXAMPLES = "e.g. " + ", ".join(TASKS)


def split_task(task: str) -> tuple[str, str]:
    """'point_mass-easy' -> ('point_mass', 'easy'): the first '-' splits domain from task."""
    domain, sep, name = task.partition("-")
    if not sep or not domain or not name:
        raise UserError(f"dm_control task '{task}' must be DOMAIN-TASK ({EXAMPLES})")
    return domain, name


def wrap_angle(a):
    """Angle(s) in [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


# ----------------------------------------------------------------------------- robot


class DMCRobot(Robot):
    """One dm_control suite task. reset(seed) gives that seed's initial state; the observation is
    {"state": the task's observation dict flattened in sorted key order, float32}. The specs and
    fps come from the environment, so they are known once connect() has run."""

    def __init__(self, task: str = "reacher-easy", max_steps: int = 1000):
        self.domain, self.task = split_task(task)
        self.max_steps = int(max_steps)
        self.name = f"dmc:{self.domain}-{self.task}"
        self._env, self._time_step = None, None
        self._layout, self._action_spec, self._fps = {}, None, None
        self._return, self._steps = 0.0, 0

    # -- specs: read from the environment on connect(), kept after disconnect()

    @property
    def observation_spec(self) -> ObservationSpec:
        dim = self._known(self._layout and max(s.stop for s in self._layout.values()))
        return ObservationSpec({"state": ArraySpec((dim,), "float32")})

    @property
    def action_spec(self) -> ActionSpec:
        return self._known(self._action_spec)

    @property
    def observation_layout(self) -> dict[str, slice]:
        """Where each key of the task's observation dict sits in obs["state"]."""
        return dict(self._known(self._layout))

    @property
    def fps(self) -> float:
        return self._known(self._fps)

    def _known(self, value):
        if not value:
            raise DeviceNotConnectedError(f"{self.name}: connect() first; the specs come from the environment")
        return value

    # -- lifecycle

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the first mujoco import
        suite = require("dm_control.suite", "sim")
        if (self.domain, self.task) not in suite.ALL_TASKS:
            raise UserError(f"unknown dm_control task '{self.domain}-{self.task}' ({EXAMPLES})")
        env = suite.load(self.domain, self.task)
        # Shadows and MSAA off before the first render: small frames render ~5x faster.
        env.physics.model.vis.quality.shadowsize = 0
        env.physics.model.vis.quality.offsamples = 0
        offset, layout = 0, {}
        for key, spec in sorted(env.observation_spec().items()):
            size = int(np.prod(spec.shape, dtype=int))
            layout[key] = slice(offset, offset + size)
            offset += size
        spec = env.action_spec()
        self._action_spec = ActionSpec(dim=spec.shape[0], low=spec.minimum, high=spec.maximum, semantics=self.name)
        self._env, self._layout, self._fps = env, layout, 1.0 / env.control_timestep()
        log.debug("%s: observation layout %s, %.0f Hz", self.name, layout, self._fps)

    def disconnect(self) -> None:
        if self._env is not None:
            self._env.close()  # frees the physics' GL contexts; EGL complains at exit otherwise
        self._env, self._time_step = None, None

    def _require(self):
        if self._env is None:
            raise DeviceNotConnectedError(f"{self.name} is not connected; call connect() first")
        return self._env

    # -- episode

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        env = self._require()
        if seed is not None:
            env.task.random.seed(int(seed))  # same draws as suite.load(..., task_kwargs={"random": seed})
        self._time_step = env.reset()
        self._return, self._steps = 0.0, 0
        return self.get_observation()

    def get_observation(self) -> dict[str, np.ndarray]:
        self._require()
        if self._time_step is None:
            raise DeviceNotConnectedError(f"{self.name}: call reset() before get_observation()")
        obs = self._time_step.observation
        state = np.concatenate([np.asarray(obs[k], dtype=np.float64).ravel() for k in self._layout])
        return {"state": state.astype(np.float32)}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        env, spec = self._require(), self._action_spec
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(spec.dim), spec.low, spec.high)
        if self.episode_done():
            return a.astype(np.float32)  # stepping a finished env would silently start a new episode
        self._time_step = env.step(a)
        self._return += float(self._time_step.reward or 0.0)
        self._steps += 1
        return a.astype(np.float32)

    def episode_info(self) -> dict:
        return {"return": self._return}

    def episode_done(self) -> bool:
        if self._time_step is None:
            return False
        return self._time_step.last() or self._steps >= self.max_steps

    def render(self, width: int, height: int) -> np.ndarray:
        env = self._require()
        return np.ascontiguousarray(env.physics.render(height=int(height), width=int(width), camera_id=0))


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


# ----------------------------------------------------------------------------- play and callables


class CallablePolicy(Policy):
    """Any callable obs_dict -> action as a Policy, so any controller can be recorded.
    `reset_fn(seed)`, when given, is called at the start of each episode."""

    def __init__(self, fn: Callable[[dict], np.ndarray], reset_fn: Callable[[int | None], None] | None = None):
        self.fn, self.reset_fn = fn, reset_fn

    def reset(self, seed=None):
        if self.reset_fn is not None:
            self.reset_fn(seed)

    def __call__(self, obs):
        return np.asarray(self.fn(obs), dtype=np.float32)


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
        self.rng = np.random.default_rng(None if seed is None else seed + 7919)
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
