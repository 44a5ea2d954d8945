"""Scripted IK experts for the widowx-sim tasks and a noisy play policy.

Experts read privileged simulator state (WidowXSimRobot.task_state()); they solve every task from it:
>= 95% over 100 seeds each (measured numbers in docs/design.md); tests/robot/test_widowx_sim.py checks a
smaller count. Policies trained on the recordings see only state and images.
"""

from __future__ import annotations

import numpy as np

from clamkit.errors import UserError
from clamkit.record.play import SegmentPlay
from clamkit.record.policy import Policy
from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.widowx_sim import BLOCK_HALF, DRAWER_FRONT, WidowXSimRobot


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
    """Close the gripper, go 6 cm above the button with the gripper pointing almost straight down, then push the
    finger tips to the cap's bottom stop (15 mm of travel; pressed counts from 8 mm) and hold it there. The
    servos are as soft as the real ones (widowx_common.servo_gains), so holding the stop stays far below the
    effort limit."""

    PITCH = 1.45
    HOVER = 0.06
    TIP = 0.0145  # finger tips reach this far beyond the EE point (along the gripper axis)
    PRESS = 0.015  # how deep the finger tips aim: the button's full travel

    def __init__(self, robot: WidowXSimRobot):
        self.robot = robot

    def __call__(self, obs):
        s, top = obs["state"], self.robot.task_state()["button_pos"]
        rpy = (0.0, self.PITCH, _facing_yaw(top))
        if np.linalg.norm(s[:2] - top[:2]) > 0.01:
            goal = top + (0.0, 0.0, self.HOVER)
        else:
            goal = top + (0.0, 0.0, self.TIP * np.sin(self.PITCH) - self.PRESS)
        return _toward(s, goal, rpy, gripper=0.0)


class PlaceBlockExpert(Policy):
    """Grasp the cube from above with the fingers square to its faces, lift it, carry it over the pot, lower
    it, let go. A small phase machine; if the cube slips out on the way it starts over from the approach."""

    PITCH = 1.45
    HOVER = 0.08
    CARRY_Z = 0.13
    DROP_Z = 0.085  # EE height over the pot when releasing: the cube's bottom clears the rim

    def __init__(self, robot: WidowXSimRobot):
        self.robot = robot
        self.reset()

    def reset(self, seed=None):
        self.phase, self._wait = "approach", 0

    def _grip_yaw(self, block_xy, block_yaw) -> float:
        """The block's face direction (mod 90 deg) nearest the natural waist direction: fingers close on faces."""
        facing = _facing_yaw(block_xy)
        return facing + float(kin.wrap_angle(4 * (block_yaw - facing)) / 4)

    def __call__(self, obs):
        s, ts = obs["state"], self.robot.task_state()
        block, pot, ee = ts["block_pos"], ts["pot_pos"], s[:3]
        held = np.linalg.norm(block - ee) < 0.03 and block[2] > BLOCK_HALF + 0.01
        if self.phase in ("lift", "carry", "lower") and not held and self._wait <= 0:
            self.phase = "approach"  # dropped it
        yaw = self._grip_yaw(block[:2], ts["block_yaw"])
        if self.phase == "approach":
            goal, grip = block + (0.0, 0.0, self.HOVER), 1.0
            if np.linalg.norm(s[:2] - block[:2]) < 0.01 and abs(kin.wrap_angle(s[5] - yaw)) < 0.05:
                self.phase = "descend"
        if self.phase == "descend":
            goal, grip = block + (0.0, 0.0, 0.005), 1.0
            if np.linalg.norm(ee - goal) < 0.01:
                self.phase, self._wait = "close", 2
        if self.phase == "close":
            goal, grip = block + (0.0, 0.0, 0.005), 0.0
            self._wait -= 1
            if self._wait <= 0:
                self.phase, self._wait = "lift", 2  # 2 ticks of grace before "not held" counts
        if self.phase in ("lift", "carry", "lower"):
            self._wait -= 1
            yaw, grip = s[5], 0.0  # keep the wrist as it is while holding
        if self.phase == "lift":
            goal = np.array([ee[0], ee[1], self.CARRY_Z])
            if ee[2] > self.CARRY_Z - 0.02:
                self.phase = "carry"
        if self.phase == "carry":
            goal = np.array([pot[0], pot[1], self.CARRY_Z])
            if np.linalg.norm(ee[:2] - pot[:2]) < 0.01:
                self.phase = "lower"
        if self.phase == "lower":
            goal = np.array([pot[0], pot[1], self.DROP_Z])
            if ee[2] < self.DROP_Z + 0.01:
                self.phase = "release"
        if self.phase == "release":
            goal, grip, yaw = np.array([pot[0], pot[1], self.CARRY_Z]), 1.0, s[5]
        return _toward(s, goal, (0.0, self.PITCH, yaw), gripper=grip)


class CloseDrawerExpert(Policy):
    """Closed gripper, fingers pointing forward and down: go in front of the drawer's face (robot side),
    drop to its height, push along the drawer's axis (aiming 1 cm past closed, so the last millimetres are
    not slow), and once it is shut back off to the standoff and hold. Backing off is what a teleoperator
    does and what a learner should see: an expert that keeps pushing on the shut drawer looks, from the
    camera, like one that stands still, and policies that learned "stand still" with a small bias toward
    the cabinet pushed on until the effort guard stopped them (docs/design.md)."""

    PITCH = 0.7
    STANDOFF = 0.05  # EE this far in front of the drawer face before pushing, and after
    PUSH_Z = 0.05
    SHUT = 0.002  # drawer opening (m) at which it counts as shut for the expert: at its stop

    def __init__(self, robot: WidowXSimRobot):
        self.robot = robot
        self.reset()

    def reset(self, seed=None):
        self.phase = "approach"

    def __call__(self, obs):
        s, ts = obs["state"], self.robot.task_state()
        yaw = ts["cabinet_yaw"]
        axis = np.array([np.cos(yaw), np.sin(yaw), 0.0])  # drawer closes along +axis
        front = ts["drawer_front"]
        start = front - axis * self.STANDOFF
        start[2] = self.PUSH_Z
        if self.phase == "approach":
            goal = start + (0.0, 0.0, 0.06)  # above the start point, clear of the drawer's top
            if np.linalg.norm(s[:2] - goal[:2]) < 0.015:
                self.phase = "drop"
        if self.phase == "drop":
            goal = start
            if abs(s[2] - start[2]) < 0.01:
                self.phase = "push"
        closed_front = ts["cabinet_pos"] - axis * DRAWER_FRONT
        if self.phase == "push":
            goal = closed_front + axis * 0.01
            goal[2] = self.PUSH_Z
            if ts["drawer_opening"] < self.SHUT:
                self.phase = "back"
        if self.phase == "back":
            goal = closed_front - axis * self.STANDOFF
            goal[2] = self.PUSH_Z
        return _toward(s, goal, (0.0, self.PITCH, yaw), gripper=0.0)


class WidowXPlay(SegmentPlay):
    """Task-agnostic, non-expert labelled data (the CLAM play set, record/play.py): the EE wanders between
    random poses in the workspace with a noisy P-controller, opens and closes the gripper at random, pauses,
    takes random actions, and only now and then follows the task expert. Gaussian noise on every action
    (std = noise x half the action range), so every action dimension, rotations included, is covered."""

    SEGMENT_STEPS, GRIP, GAIN = (3, 15), (0.0, 1.0), (0.5, 1.5)

    def __init__(self, task: str, robot: WidowXSimRobot, noise: float = 0.3, expert_prob: float = 0.2):
        super().__init__(expert_policy(task, robot), noise, expert_prob)
        self.robot = robot
        self._half = (np.asarray(wx.ACTION_SPEC.high) - np.asarray(wx.ACTION_SPEC.low)) / 2

    def _draw_target(self, r):
        ws = self.robot.workspace
        xyz = r.uniform(ws.low, ws.high)
        # Orientations near the arm's plane: far off it, with the wrist straight, the wx250s needs big
        # forearm_roll/wrist_rotate swings for small rpy changes (a wrist singularity), which the joint step
        # cap then spreads over several ticks.
        rpy = (r.normal(0.0, 0.2), r.uniform(0.5, ws.rpy_high[1]), _facing_yaw(xyz) + r.normal(0.0, 0.2))
        return xyz, ws.clamp_rpy(rpy)

    def _goto(self, s):
        xyz, rpy = self._target
        return _toward(s, xyz, rpy, self._grip, gain=self._gain).astype(float)

    def _pause(self, s):
        a = np.zeros(7)
        a[6] = float(s[6] > 0.5)  # hold the gripper as it is
        return a

    def _random(self):
        a = self.rng.uniform(wx.ACTION_SPEC.low, wx.ACTION_SPEC.high)
        a[3:6] *= 0.3  # a random walk in rpy drifts to the workspace's orientation limits fast
        return a

    def _perturb(self, a):
        r = self.rng
        a[:6] += r.normal(0.0, self.noise, 6) * self._half[:6]
        if r.random() < 0.05:
            a[6] = 1.0 - a[6]  # an occasional gripper flicker
        return np.clip(a, wx.ACTION_SPEC.low, wx.ACTION_SPEC.high).astype(np.float32)


def expert_policy(task: str, robot: WidowXSimRobot) -> Policy:
    """The scripted IK expert for a widowx-sim task (reads robot.task_state())."""
    experts = {"reach-block": ReachBlockExpert, "push-button": PushButtonExpert, "place-block": PlaceBlockExpert,
               "close-drawer": CloseDrawerExpert}
    if task not in experts:
        raise UserError(f"no scripted expert for widowx-sim task '{task}' (choose from {', '.join(experts)})")
    return experts[task](robot)


def play_policy(task: str, robot: WidowXSimRobot, noise: float = 0.3, expert_prob: float = 0.2) -> Policy:
    """Noisy, task-agnostic play for the labelled set (see WidowXPlay)."""
    return WidowXPlay(task, robot, noise=noise, expert_prob=expert_prob)
