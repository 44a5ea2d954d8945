"""Configuration of the real WidowX arm (clamkit.robot.widowx), validated when it is built.

Every safety limit and timeout lives here with the reason for its default, so a deployment can be
reviewed by reading one dataclass. Build it from YAML/--set like any other config, or pass fields
as keyword arguments: `make_robot("widowx", moving_time=0.25)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clamkit.robot import widowx_common as wx

# Interbotix X-Series arm models we know of, with their arm joint count. Only the 6-DOF wx250s has
# kinematics in clamkit.robot.kinematics; the 5-DOF arms cannot follow 7-D Δxyz/Δrpy actions with it.
KNOWN_MODELS = {"wx250s": 6, "wx250": 5, "wx200": 5}
SUPPORTED_MODELS = ("wx250s",)
ROS_VERSIONS = ("auto", "ros2", "ros1")
JOINT_LIMIT_MODES = ("clip", "refuse")


@dataclass
class WidowXConfig:
    """Settings of the Interbotix arm driver and of clamkit's checks around it."""

    robot_model: str = "wx250s"
    """Interbotix model codename (the `robot_model:=` of xsarm_control.launch.py)."""
    robot_name: str | None = None
    """ROS namespace of the xs_sdk node; None = robot_model (Interbotix's default)."""
    group_name: str = "arm"
    """Joint group of the arm joints in the motor config."""
    gripper_name: str = "gripper"
    """Gripper motor name in the motor config."""
    ros: str = "auto"
    """Which Interbotix Python API: "ros2" (interbotix_xs_modules.xs_robot), "ros1"
    (interbotix_xs_modules.arm) or "auto" (ROS 2 when importable, else ROS 1)."""
    fps: float = wx.FPS
    """Control rate the policy was trained at (Bridge convention: 5 Hz)."""
    moving_time: float | None = None
    """Seconds the motors take to reach each tick's joint targets (time-based profile).
    None = one control period (1 / fps): the arm arrives as the next command comes in."""
    accel_time: float | None = None
    """Seconds spent accelerating/decelerating within moving_time (<= moving_time / 2).
    None = moving_time / 4."""
    safe_moving_time: float = 2.0
    """Minimum seconds for home/sleep moves (Interbotix's own default)."""
    safe_accel_time: float = 0.3
    """Accel time for home/sleep moves (Interbotix's default)."""
    safe_joint_speed: float = 0.8
    """rad/s: home/sleep moves take longer than safe_moving_time when a joint must travel far, so no
    joint goes faster than this (a third of the wx250s' ~pi rad/s limit)."""
    home: tuple[float, ...] = tuple(float(x) for x in wx.HOME)
    """Joint pose (rad) reset() goes to and go_safe() passes through: the shared ready pose above the
    middle of the workspace (same as the simulator's)."""
    gripper_pressure: float = 0.5
    """0..1 fraction between the pressure limits below (Interbotix's default)."""
    gripper_pressure_lower_limit: int = 150
    """PWM (or mA) at pressure 0: high enough to move the fingers (Interbotix's default)."""
    gripper_pressure_upper_limit: int = 350
    """PWM (or mA) at pressure 1: low enough not to overload the motor while holding (Interbotix's default)."""
    gripper_open_above: float = 0.6
    """The gripper is PWM-driven open/closed, not positioned: a commanded opening above this opens it..."""
    gripper_close_below: float = 0.4
    """...below this closes it; in between it keeps its last command (hysteresis against chattering)."""
    workspace: wx.Workspace = field(default_factory=lambda: wx.DEFAULT_WORKSPACE)
    """Box the end-effector target is clamped to (position and rpy), as in the simulator."""
    max_joint_step: float = wx.MAX_JOINT_STEP
    """Largest change of any joint per tick (rad), before the velocity cap below."""
    velocity_margin: float = wx.VELOCITY_MARGIN
    """Fraction of each joint's velocity limit a tick may use: Interbotix refuses a whole command
    that would exceed a limit, so stay a little under it."""
    joint_limit_margin: float = 0.01
    """rad kept clear of each joint limit (Interbotix truncates to 3 decimals before checking)."""
    joint_limit_mode: str = "clip"
    """A target outside the joint limits: "clip" it to the limits (counted), or "refuse" the arm
    command for that tick (hold; counted)."""
    max_refusals: int = 5
    """Consecutive ticks Interbotix may refuse a command (set_joint_positions -> False) before it is a fault."""
    effort_limit: float | None = wx.EFFORT_LIMIT
    """|joint effort| above which a joint counts as overloaded. xs_sdk reports present current in mA on
    the XM430 motors (1800: ~80% of an XM430-W350's 2.3 A stall current; widowx_common.joint_efforts). widowx-sim
    applies the same rule with the same defaults. None turns the check off."""
    effort_fault_ticks: int = wx.EFFORT_FAULT_TICKS
    """Consecutive overloaded ticks that make a fault (a single current spike on a direction change is normal)."""
    joint_state_timeout: float | None = 0.25
    """s: a joint state older than this stops the run (WidowXFault). xs_sdk publishes at 100 Hz with ~10 ms
    latency; a stalled publisher (a servo not answering) or late messages would have the IK start from a
    stale pose. None turns the check off."""
    sleep_tolerance: float = 0.15
    """rad: the arm counts as resting in its sleep pose when every joint is this close to it."""
    torque_off_on_disconnect: bool = True
    """Torque the motors off on disconnect -- only ever from the sleep pose, where the arm rests on its cradle."""
    connect_timeout: float = 20.0
    """Seconds to wait for the xs_sdk node's services and joint states before giving up."""

    def __post_init__(self):
        if self.robot_model not in KNOWN_MODELS:
            raise ValueError(f"robot_model '{self.robot_model}' is not an Interbotix X-Series arm we know "
                             f"(one of {', '.join(KNOWN_MODELS)})")
        if self.robot_model not in SUPPORTED_MODELS:
            raise ValueError(f"robot_model '{self.robot_model}' is a {KNOWN_MODELS[self.robot_model]}-DOF arm; "
                             "clamkit's kinematics (robot/kinematics.py) model the 6-DOF wx250s only, so its 7-D "
                             "Δxyz/Δrpy actions cannot be mapped to this arm yet")
        if self.ros not in ROS_VERSIONS:
            raise ValueError(f"ros must be one of {', '.join(ROS_VERSIONS)}, got '{self.ros}'")
        if self.joint_limit_mode not in JOINT_LIMIT_MODES:
            raise ValueError(f"joint_limit_mode must be one of {', '.join(JOINT_LIMIT_MODES)}, got '{self.joint_limit_mode}'")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.moving_time is None:
            self.moving_time = 1.0 / self.fps
        if self.accel_time is None:
            self.accel_time = self.moving_time / 4
        for name in ("moving_time", "safe_moving_time", "safe_joint_speed", "connect_timeout", "max_joint_step",
                     "sleep_tolerance"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name, total in (("accel_time", "moving_time"), ("safe_accel_time", "safe_moving_time")):
            acc, mt = float(getattr(self, name)), float(getattr(self, total))
            if not 0 <= acc <= mt / 2:
                raise ValueError(f"{name} must be between 0 and {total} / 2 ({mt / 2:g} s), got {acc:g}")
        if self.moving_time > 2.0 / self.fps:
            raise ValueError(f"moving_time {self.moving_time:g} s is longer than two control periods "
                             f"({2 / self.fps:g} s at {self.fps:g} Hz): the arm would lag the policy")
        if not 0 < self.velocity_margin <= 1:
            raise ValueError(f"velocity_margin must be in (0, 1], got {self.velocity_margin}")
        if not 0 <= self.joint_limit_margin < 0.2:
            raise ValueError(f"joint_limit_margin must be in [0, 0.2) rad, got {self.joint_limit_margin}")
        if not 0 <= self.gripper_pressure <= 1:
            raise ValueError(f"gripper_pressure must be in [0, 1], got {self.gripper_pressure}")
        if not 0 < self.gripper_pressure_lower_limit <= self.gripper_pressure_upper_limit:
            raise ValueError("gripper_pressure_lower_limit must be > 0 and <= gripper_pressure_upper_limit")
        if not 0 <= self.gripper_close_below <= self.gripper_open_above <= 1:
            raise ValueError("need 0 <= gripper_close_below <= gripper_open_above <= 1, got "
                             f"{self.gripper_close_below} and {self.gripper_open_above}")
        if self.joint_state_timeout is not None and not self.joint_state_timeout > 0:
            raise ValueError(f"joint_state_timeout must be > 0 or None, got {self.joint_state_timeout}")
        if self.effort_limit is not None and not self.effort_limit > 0:
            raise ValueError(f"effort_limit must be > 0 or None, got {self.effort_limit}")
        if int(self.effort_fault_ticks) < 1 or int(self.max_refusals) < 1:
            raise ValueError("effort_fault_ticks and max_refusals must be >= 1")
        home = np.asarray(self.home, dtype=float)
        if home.shape != (KNOWN_MODELS[self.robot_model],) or not np.isfinite(home).all():
            raise ValueError(f"home must be {KNOWN_MODELS[self.robot_model]} finite joint angles, got {self.home!r}")
        self.home = tuple(float(x) for x in home)
        if isinstance(self.workspace, dict):
            self.workspace = wx.Workspace.from_json(self.workspace)
        if not isinstance(self.workspace, wx.Workspace):
            raise ValueError(f"workspace must be a widowx_common.Workspace or a dict of its fields, got {self.workspace!r}")
