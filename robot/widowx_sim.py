"""Our WidowX 250s in MuJoCo as a Robot, two tabletop tasks, their scripted IK experts and a noisy play policy.

The simulated arm speaks the real arm's language (widowx_common): the same 7-D action (EE deltas +
absolute gripper) turned into joint targets by the same IK, the same 7-D state (EE xyz, rpy,
gripper opening) computed by the same forward kinematics, 5 Hz. A policy trained here sees what it
will see on the real robot, minus the camera's realism.

Tasks (the object a task does not use is parked off the table):
- reach-block: bring the end-effector point within 3 cm of a 4 cm red cube placed at random.
- push-button: press a spring-loaded button at a random spot at least 8 mm down (of 15 mm travel).

Experts may read privileged simulator state (task_state()); policies see only state and images.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from clamkit.errors import UserError, require
from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.base import DeviceNotConnectedError, Policy, Robot
from clamkit.specs import ActionSpec, ObservationSpec

log = logging.getLogger(__name__)

SCENE_XML = Path(__file__).with_name("assets") / "widowx_scene.xml"
TASKS = ("reach-block", "push-button")
# Where objects are placed (m, base frame), inside the workspace with room for the gripper around them.
OBJECT_LOW, OBJECT_HIGH = np.array([0.22, -0.16]), np.array([0.38, 0.16])
BLOCK_HALF = 0.02
REACH_TOLERANCE = 0.03   # EE point to block centre (m)
PRESS_DEPTH = 0.008      # cap travel (m) that counts as pressed
CAP_TOP = 0.044          # button cap top above the table when released (housing 0.024 + cap 0.02)
START_JITTER = 0.05      # rad per arm joint around HOME at reset (~2 cm at the EE)
PARKED_BLOCK = np.array([0.0, -1.5, -0.75 + BLOCK_HALF])
PARKED_BUTTON = np.array([0.0, 1.5, -0.75])


def _import_mujoco():
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the first import
    return require("mujoco", "sim")


class WidowXSimRobot(Robot):
    """The simulated WidowX 250s on a table. reset(seed) places the task's object from that seed."""

    name = "widowx-sim"
    fps = wx.FPS

    def __init__(self, task: str = "reach-block", max_steps: int = 50, workspace: wx.Workspace | None = None):
        if task not in TASKS:
            raise UserError(f"unknown widowx-sim task '{task}' (choose from {', '.join(TASKS)})")
        if int(max_steps) < 1:
            raise UserError(f"max_steps must be >= 1, got {max_steps}")
        self.task, self.max_steps = task, int(max_steps)
        self.workspace = workspace or wx.DEFAULT_WORKSPACE
        self._model = self._data = self._renderer = None
        self._success, self._steps = False, 0
        self.last_command: wx.JointCommand | None = None  # the previous tick's IK result (for debugging)

    # ------------------------------------------------------------------ lifecycle

    @property
    def observation_spec(self) -> ObservationSpec:
        return wx.OBSERVATION_SPEC

    @property
    def action_spec(self) -> ActionSpec:
        return wx.ACTION_SPEC

    @property
    def is_connected(self) -> bool:
        return self._model is not None

    def connect(self) -> None:
        mujoco = _import_mujoco()
        model = mujoco.MjModel.from_xml_path(str(SCENE_XML))
        # Shadows and MSAA off before the first render (DESIGN §2); the scene file says so too.
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        self._model, self._data = model, mujoco.MjData(model)
        self._arm_qpos = np.array([model.joint(n).qposadr[0] for n in kin.JOINT_NAMES])
        self._arm_act = np.array([model.actuator(n).id for n in kin.JOINT_NAMES])
        self._finger_qpos = [model.joint(n).qposadr[0] for n in ("left_finger", "right_finger")]
        self._finger_act = [model.actuator(n).id for n in ("left_finger", "right_finger")]
        self._block_qpos = model.joint("block").qposadr[0]
        self._button_qpos = model.joint("button").qposadr[0]
        self._button_body = model.body("button").id
        self._ee_site = model.site("ee").id
        self._substeps = int(round(1.0 / (self.fps * model.opt.timestep)))  # 100 x 2 ms per 5 Hz tick

    def disconnect(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._model = self._data = self._renderer = None

    def _require(self):
        if self._model is None:
            raise DeviceNotConnectedError(f"{self.name} is not connected")
        return self._model, self._data

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        import mujoco

        model, data = self._require()
        rng = np.random.default_rng(seed)
        mujoco.mj_resetData(model, data)
        q0 = wx.HOME + rng.uniform(-START_JITTER, START_JITTER, 6)  # a few cm around the home pose
        data.qpos[self._arm_qpos] = q0
        self._set_gripper_state(1.0)
        data.ctrl[self._arm_act] = q0
        self._set_gripper_ctrl(1.0)
        block, button = PARKED_BLOCK, PARKED_BUTTON
        xy = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
        if self.task == "reach-block":
            block = np.array([xy[0], xy[1], BLOCK_HALF])
        else:
            button = np.array([xy[0], xy[1], 0.0])
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        data.qpos[self._block_qpos:self._block_qpos + 7] = [*block, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        model.body_pos[self._button_body] = button
        mujoco.mj_forward(model, data)
        for _ in range(25):  # let contacts settle (50 ms)
            mujoco.mj_step(model, data)
        self._success, self._steps, self.last_command = False, 0, None
        return self.get_observation()

    # ------------------------------------------------------------------ state and actions

    def _set_gripper_state(self, g: float) -> None:
        f = wx.gripper_to_finger(g)
        self._data.qpos[self._finger_qpos] = [f, -f]

    def _set_gripper_ctrl(self, g: float) -> None:
        f = wx.gripper_to_finger(g)
        self._data.ctrl[self._finger_act] = [f, -f]

    def joint_positions(self) -> np.ndarray:
        """The 6 arm joint angles (rad), as the real arm's joint_states would give them."""
        _, data = self._require()
        return data.qpos[self._arm_qpos].copy()

    def gripper_opening(self) -> float:
        _, data = self._require()
        return wx.finger_to_gripper(float(data.qpos[self._finger_qpos[0]]))

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, rpy) of the end-effector point from the measured joints (the runtime's safety layer uses it)."""
        return kin.ee_pose(self.joint_positions())

    def get_observation(self) -> dict[str, np.ndarray]:
        return {"state": wx.make_state(self.joint_positions(), self.gripper_opening())}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        import mujoco

        model, data = self._require()
        a = np.clip(np.asarray(action, dtype=np.float32), wx.ACTION_SPEC.low, wx.ACTION_SPEC.high)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: non-finite action {a} (the runtime safety layer should have held)")
        cmd = wx.action_to_joint_command(self.joint_positions(), a, self.workspace)
        if not cmd.ik.success:
            log.debug("IK best effort: pos_err %.4f m rot_err %.3f rad", cmd.ik.pos_err, cmd.ik.rot_err)
        data.ctrl[self._arm_act] = cmd.q
        self._set_gripper_ctrl(cmd.gripper)
        for _ in range(self._substeps):
            mujoco.mj_step(model, data)
            self._success |= self._task_success()
        self._steps += 1
        self.last_command = cmd
        return cmd.action  # what was applied: a workspace-clamped delta is recorded as the smaller delta

    # ------------------------------------------------------------------ task

    def _task_success(self) -> bool:
        data = self._data
        if self.task == "reach-block":
            block = data.qpos[self._block_qpos:self._block_qpos + 3]
            return bool(np.linalg.norm(data.site_xpos[self._ee_site] - block) < REACH_TOLERANCE)
        return bool(-data.qpos[self._button_qpos] > PRESS_DEPTH)

    def task_state(self) -> dict[str, np.ndarray | float | str]:
        """Privileged simulator state for scripted experts and tests (a policy never sees it):
        "target" is the block centre (reach-block) or the top centre of the released button cap (push-button)."""
        model, data = self._require()
        block = data.qpos[self._block_qpos:self._block_qpos + 3].copy()
        button = model.body_pos[self._button_body].copy() + np.array([0.0, 0.0, CAP_TOP])
        depth = float(max(-data.qpos[self._button_qpos], 0.0))
        return {"task": self.task, "target": block if self.task == "reach-block" else button,
                "block_pos": block, "button_pos": button, "button_depth": depth,
                "ee_pos": data.site_xpos[self._ee_site].copy()}

    def episode_info(self) -> dict:
        return {"success": self._success}

    def episode_done(self) -> bool:
        return self._steps >= self.max_steps

    def render(self, width: int, height: int) -> np.ndarray:
        import mujoco

        model, data = self._require()
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(model, height, width)
        self._renderer.update_scene(data, camera="cam")
        return np.ascontiguousarray(self._renderer.render())  # the fixed "cam" renders upright


# ============================================================================ scripted policies

def _toward(state: np.ndarray, xyz, rpy, gripper: float, gain: float = 1.0) -> np.ndarray:
    """The action that moves the EE toward (xyz, rpy) as fast as the action bounds allow."""
    a = np.empty(7)
    a[:3] = gain * (np.asarray(xyz) - state[:3])
    a[3:6] = gain * kin.wrap_angle(np.asarray(rpy) - state[3:6])
    a[6] = gripper
    return np.clip(a, wx.ACTION_SPEC.low, wx.ACTION_SPEC.high).astype(np.float32)


def _facing_yaw(xy) -> float:
    """Yaw that points the gripper away from the base toward a point: the natural waist direction."""
    return float(np.arctan2(xy[1], xy[0]))


class ReachBlockExpert(Policy):
    """Open the gripper, go 8 cm above the block, then descend until the fingers straddle it."""

    PITCH = 1.3
    HOVER = 0.08

    def __init__(self, robot: WidowXSimRobot):
        self.robot = robot

    def __call__(self, obs):
        s, block = obs["state"], self.robot.task_state()["block_pos"]
        rpy = (0.0, self.PITCH, _facing_yaw(block))
        if np.linalg.norm(s[:2] - block[:2]) > 0.015:
            goal = block + (0.0, 0.0, self.HOVER)
        else:
            goal = block + (0.0, 0.0, 0.012)
        return _toward(s, goal, rpy, gripper=1.0)


class PushButtonExpert(Policy):
    """Close the gripper, go 6 cm above the button with the gripper pointing almost straight down, then
    push the finger tips ~1.5 cm into the cap."""

    PITCH = 1.45
    HOVER = 0.06
    TIP = 0.0145  # finger tips reach this far beyond the EE point (along the gripper axis)

    def __init__(self, robot: WidowXSimRobot):
        self.robot = robot

    def __call__(self, obs):
        s, top = obs["state"], self.robot.task_state()["button_pos"]
        rpy = (0.0, self.PITCH, _facing_yaw(top))
        if np.linalg.norm(s[:2] - top[:2]) > 0.01:
            goal = top + (0.0, 0.0, self.HOVER)
        else:
            goal = top + (0.0, 0.0, self.TIP * np.sin(self.PITCH) - 0.015)
        return _toward(s, goal, rpy, gripper=0.0)


class WidowXPlay(Policy):
    """Task-agnostic, non-expert labelled data (the CLAM play set): the EE wanders between random
    poses in the workspace with a noisy P-controller, opens and closes the gripper at random, pauses,
    takes random actions, and only now and then follows the task expert. Gaussian noise on every
    action (std = noise x half the action range), so every action dimension, rotations included, is covered."""

    def __init__(self, task: str, robot: WidowXSimRobot, noise: float = 0.3, expert_prob: float = 0.2):
        self.robot, self.noise, self.expert_prob = robot, float(noise), float(expert_prob)
        self._expert = expert_policy(task, robot)
        self._half = (np.asarray(wx.ACTION_SPEC.high) - np.asarray(wx.ACTION_SPEC.low)) / 2
        self.rng = np.random.default_rng(0)
        self._left = 0

    def reset(self, seed=None):
        self.rng = np.random.default_rng(None if seed is None else seed + 7919)
        self._left = 0
        self._expert.reset(seed)

    def _new_segment(self):
        r, ws = self.rng, self.robot.workspace
        self._mode = r.choice(["goto", "expert", "pause", "random"],
                              p=[0.55, self.expert_prob, 0.1, 0.35 - self.expert_prob])
        self._left = int(r.integers(3, 15))
        self._xyz = r.uniform(ws.low, ws.high)
        # Orientations near the arm's plane: far off it, with the wrist straight, the wx250s needs big
        # forearm_roll/wrist_rotate swings for small rpy changes (a wrist singularity), which the joint step
        # cap then spreads over several ticks.
        rpy = (r.normal(0.0, 0.2), r.uniform(0.5, ws.rpy_high[1]), _facing_yaw(self._xyz) + r.normal(0.0, 0.2))
        self._rpy = ws.clamp_rpy(rpy)
        self._grip = float(r.choice([0.0, 1.0]))
        self._gain = float(r.uniform(0.5, 1.5))

    def __call__(self, obs):
        if self._left <= 0:
            self._new_segment()
        self._left -= 1
        s, r = obs["state"], self.rng
        if self._mode == "expert":
            a = self._expert(obs).astype(float)
        elif self._mode == "goto":
            a = _toward(s, self._xyz, self._rpy, self._grip, gain=self._gain).astype(float)
        elif self._mode == "pause":
            a = np.zeros(7)
            a[6] = float(s[6] > 0.5)  # hold the gripper as it is
        else:
            a = r.uniform(wx.ACTION_SPEC.low, wx.ACTION_SPEC.high)
            a[3:6] *= 0.3  # a random walk in rpy drifts to the workspace's orientation limits fast
        a[:6] += r.normal(0.0, self.noise, 6) * self._half[:6]
        if r.random() < 0.05:
            a[6] = 1.0 - a[6]  # an occasional gripper flicker
        return np.clip(a, wx.ACTION_SPEC.low, wx.ACTION_SPEC.high).astype(np.float32)


def expert_policy(task: str, robot: WidowXSimRobot) -> Policy:
    """The scripted IK expert for a widowx-sim task (reads robot.task_state())."""
    experts = {"reach-block": ReachBlockExpert, "push-button": PushButtonExpert}
    if task not in experts:
        raise UserError(f"no scripted expert for widowx-sim task '{task}' (choose from {', '.join(experts)})")
    return experts[task](robot)


def play_policy(task: str, robot: WidowXSimRobot, noise: float = 0.3, expert_prob: float = 0.2) -> Policy:
    """Noisy, task-agnostic play for the labelled set (see WidowXPlay)."""
    return WidowXPlay(task, robot, noise=noise, expert_prob=expert_prob)
