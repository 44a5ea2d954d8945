"""Interbotix's Python API (interbotix_xs_modules), both layouts, driving the emulated world instead of
an xs_sdk node. Installed into sys.modules under the real package names, so clamkit.robot.widowx
imports and runs exactly the code it runs on the robot -- without ROS.

    restore = install(world, ros="ros2")      # or "ros1"
    ...                                       # WidowXRobot().connect() finds "Interbotix"
    restore()                                 # the previous sys.modules entries come back

Names, signatures and behaviour follow interbotix_ros_toolboxes (ROS 1: branch main,
interbotix_xs_modules/arm.py, core.py, gripper.py; ROS 2: branch humble, interbotix_xs_modules/xs_robot/):
- set_joint_positions(joint_positions, moving_time=None, accel_time=None, blocking=True) checks the
  positions (truncated to 3 decimals) against the group's limits and the speed |goal - last command| /
  moving_time against joint_velocity_limits -- with the moving_time in force *before* this call -- and
  sends nothing when a check fails (returns False). On success ROS 2 returns True, ROS 1 returns None.
- publish_positions: set_trajectory_time (a register write when moving_time/accel_time change), then
  the group command; blocking sleeps moving_time (the arm is *not* there yet when a non-blocking call returns).
- go_to_home_pose is all zeros; go_to_sleep_pose uses group_info.joint_sleep_positions.
- The gripper: gripper_controller(effort, delay) publishes the effort only when the fingers are not
  already at the limit in that direction, then sleeps delay; a 50 Hz timer (gripper_state) publishes 0
  once the left finger passes its limit -- so on a block the motor keeps squeezing. ROS 1: open/close;
  ROS 2: release/grasp (release opens, grasp closes).
- core: joint_states (sensor_msgs/JointState with header.stamp) under js_mutex, js_index_map,
  robot_torque_enable(cmd_type, name, enable), robot_reboot_motors, robot_get_robot_info,
  robot_get_joint_states, robot_get_single_joint_state, robot_write_commands, robot_write_joint_command.
- No xs_sdk node (the world is not running): the ROS 1 core exits (sys.exit(1)), the ROS 2 core waits.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from dataclasses import dataclass, field

from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.emulate.world import (
    JOINT_LOWER,
    JOINT_UPPER,
    JOINT_VELOCITY,
    JS_NAMES,
    EmulatedWorld,
    JointSample,
)

_WORLD: EmulatedWorld | None = None  # the "xs_sdk node" the API talks to


# ----------------------------------------------------------------------------- messages


class _StampROS2:
    """builtin_interfaces/Time."""

    def __init__(self, t: float):
        self.sec, self.nanosec = int(t), int((t - int(t)) * 1e9)


class _StampROS1:
    """rospy.Time."""

    def __init__(self, t: float):
        self.secs, self.nsecs = int(t), int((t - int(t)) * 1e9)

    def to_sec(self) -> float:
        return self.secs + self.nsecs * 1e-9


@dataclass
class Header:
    stamp: object = None
    frame_id: str = ""


@dataclass
class JointState:
    """sensor_msgs/JointState."""

    header: Header = field(default_factory=Header)
    name: list = field(default_factory=list)
    position: list = field(default_factory=list)
    velocity: list = field(default_factory=list)
    effort: list = field(default_factory=list)


@dataclass
class RobotInfo:
    """interbotix_xs_msgs/srv/RobotInfo response."""

    joint_names: list
    joint_ids: list
    joint_lower_limits: list
    joint_upper_limits: list
    joint_velocity_limits: list
    joint_sleep_positions: list
    joint_state_indices: list
    num_joints: int
    mode: str
    profile_type: str
    name: list = field(default_factory=list)


def _group_info(js_index_map) -> RobotInfo:
    return RobotInfo(joint_names=list(kin.JOINT_NAMES), joint_ids=[1, 2, 4, 6, 7, 8], joint_lower_limits=list(JOINT_LOWER),
                     joint_upper_limits=list(JOINT_UPPER), joint_velocity_limits=list(JOINT_VELOCITY),
                     joint_sleep_positions=[float(x) for x in wx.SLEEP],
                     joint_state_indices=[js_index_map[n] for n in kin.JOINT_NAMES], num_joints=6, mode="position",
                     profile_type="time")


def _gripper_info(js_index_map) -> RobotInfo:
    return RobotInfo(joint_names=["left_finger"], joint_ids=[9], joint_lower_limits=[kin.FINGER_CLOSED],
                     joint_upper_limits=[kin.FINGER_OPEN], joint_velocity_limits=[1.0], joint_sleep_positions=[0.0],
                     joint_state_indices=[js_index_map["left_finger"]], num_joints=1, mode="pwm", profile_type="time")


# ----------------------------------------------------------------------------- core


class InterbotixRobotXSCore:
    """The ROS plumbing: joint states in, commands out (here: to the emulated world)."""

    def __init__(self, robot_model: str, robot_name: str | None = None, init_node: bool = True, *, ros: str = "ros2",
                 **_ros_args):
        world = _WORLD
        if world is None or not world.running:
            if ros == "ros1":  # the ROS 1 core calls sys.exit(1) when the xs_sdk services are missing
                print(f"[xs_sdk] the services under /{robot_name or robot_model} are not available", file=sys.stderr)
                sys.exit(1)
            while _WORLD is None or not _WORLD.running:  # the ROS 2 core waits for the services forever
                time.sleep(0.05)
            world = _WORLD
        self.world, self.ros = world, ros
        self.robot_model, self.robot_name = robot_model, robot_name or robot_model
        self.js_mutex = threading.Lock()
        self.js_index_map = {n: i for i, n in enumerate(JS_NAMES)}
        self.joint_states: JointState | None = None
        self._got_first = threading.Event()
        world.subscribers.append(self._joint_state_cb)
        self._got_first.wait(5.0)  # the real core waits for the first joint state message as well

    def _joint_state_cb(self, s: JointSample) -> None:
        stamp = _StampROS2(s.stamp) if self.ros == "ros2" else _StampROS1(s.stamp)
        msg = JointState(Header(stamp), list(JS_NAMES), s.position.tolist(), s.velocity.tolist(), s.effort.tolist())
        with self.js_mutex:
            self.joint_states = msg
        self._got_first.set()

    def _indices(self, cmd_type: str, name: str) -> list[int]:
        if cmd_type == "group":
            return list(range(6))
        if name == "gripper":
            return [6]
        return [kin.JOINT_NAMES.index(name)]

    def robot_torque_enable(self, cmd_type: str, name: str, enable: bool) -> None:
        self.world.set_torque(self._indices(cmd_type, name), enable)

    def robot_reboot_motors(self, cmd_type: str, name: str, enable: bool, smart_reboot: bool = False) -> None:
        self.world.clear()  # a reboot clears a motor's hardware error
        self.world.set_torque(self._indices(cmd_type, name), enable)

    def robot_get_robot_info(self, cmd_type: str, name: str) -> RobotInfo:
        return _group_info(self.js_index_map) if cmd_type == "group" else _gripper_info(self.js_index_map)

    def robot_write_commands(self, group_name: str, commands) -> None:
        arm = getattr(self, "_arm", None)
        mt, at = (arm.moving_time, arm.accel_time) if arm is not None else (2.0, 0.3)
        self.world.command_arm(commands, mt, at)

    def robot_write_joint_command(self, joint_name: str, command: float) -> None:
        if joint_name == "gripper":
            self.world.command_gripper(command)
            return
        q = self.world.profiles
        goal = [p.p1 for p in q]
        goal[kin.JOINT_NAMES.index(joint_name)] = float(command)
        arm = getattr(self, "_arm", None)
        self.world.command_arm(goal, arm.moving_time if arm else 2.0, arm.accel_time if arm else 0.3)

    def robot_get_joint_states(self) -> JointState:
        with self.js_mutex:
            return self.joint_states

    def robot_get_single_joint_state(self, name: str) -> dict:
        with self.js_mutex:
            i = self.js_index_map[name]
            js = self.joint_states
            return {"position": js.position[i], "velocity": js.velocity[i], "effort": js.effort[i]}

    def destroy_node(self) -> None:
        if self._joint_state_cb in self.world.subscribers:
            self.world.subscribers.remove(self._joint_state_cb)


# ----------------------------------------------------------------------------- arm


class InterbotixArmXSInterface:
    def __init__(self, core: InterbotixRobotXSCore, robot_model: str, group_name: str, moving_time: float = 2.0,
                 accel_time: float = 0.3):
        self.core, self.robot_model, self.group_name = core, robot_model, group_name
        self.group_info = core.robot_get_robot_info("group", group_name)
        self.moving_time = self.accel_time = None
        with core.js_mutex:
            self.joint_commands = [core.joint_states.position[core.js_index_map[n]] for n in self.group_info.joint_names]
        self.info_index_map = dict(zip(self.group_info.joint_names, range(self.group_info.num_joints)))
        self.set_trajectory_time(moving_time, accel_time)
        core._arm = self

    def set_trajectory_time(self, moving_time: float | None = None, accel_time: float | None = None) -> None:
        # On the robot: a Profile_Velocity / Profile_Acceleration register write (a service call).
        if moving_time is not None and moving_time != self.moving_time:
            self.moving_time = moving_time
        if accel_time is not None and accel_time != self.accel_time:
            self.accel_time = accel_time

    def check_joint_limits(self, positions) -> bool:
        theta_list = [int(elem * 1000) / 1000.0 for elem in positions]
        speed_list = [abs(goal - current) / float(self.moving_time) for goal, current in zip(theta_list, self.joint_commands)]
        for x in range(self.group_info.num_joints):
            if not self.group_info.joint_lower_limits[x] <= theta_list[x] <= self.group_info.joint_upper_limits[x]:
                return False
            if speed_list[x] > self.group_info.joint_velocity_limits[x]:
                return False
        return True

    def check_single_joint_limit(self, joint_name: str, position: float) -> bool:
        i = self.info_index_map[joint_name]
        theta = int(position * 1000) / 1000.0
        speed = abs(theta - self.joint_commands[i]) / float(self.moving_time)
        gi = self.group_info
        return gi.joint_lower_limits[i] <= theta <= gi.joint_upper_limits[i] and speed <= gi.joint_velocity_limits[i]

    def publish_positions(self, positions, moving_time: float | None = None, accel_time: float | None = None,
                          blocking: bool = True) -> None:
        self.set_trajectory_time(moving_time, accel_time)
        self.joint_commands = list(positions)
        self.core.world.command_arm(self.joint_commands, self.moving_time, self.accel_time)
        if blocking:
            time.sleep(self.moving_time)

    def set_joint_positions(self, joint_positions, moving_time: float | None = None, accel_time: float | None = None,
                            blocking: bool = True):
        if self.check_joint_limits(joint_positions):
            self.publish_positions(joint_positions, moving_time, accel_time, blocking)
            return True if self.core.ros == "ros2" else None  # ROS 1 falls off the end on success
        return False

    def set_single_joint_position(self, joint_name: str, position: float, moving_time: float | None = None,
                                  accel_time: float | None = None, blocking: bool = True) -> bool:
        if not self.check_single_joint_limit(joint_name, position):
            return False
        self.set_trajectory_time(moving_time, accel_time)
        self.joint_commands[self.info_index_map[joint_name]] = position
        self.core.world.command_arm(self.joint_commands, self.moving_time, self.accel_time)
        if blocking:
            time.sleep(self.moving_time)
        return True

    def go_to_home_pose(self, moving_time: float | None = None, accel_time: float | None = None,
                        blocking: bool = True) -> None:
        self.publish_positions([0.0] * self.group_info.num_joints, moving_time, accel_time, blocking)

    def go_to_sleep_pose(self, moving_time: float | None = None, accel_time: float | None = None,
                         blocking: bool = True) -> None:
        self.publish_positions(self.group_info.joint_sleep_positions, moving_time, accel_time, blocking)

    def get_joint_commands(self) -> list[float]:
        return list(self.joint_commands)

    def get_single_joint_command(self, joint_name: str) -> float:
        return self.joint_commands[self.info_index_map[joint_name]]


# ----------------------------------------------------------------------------- gripper


class InterbotixGripperXSInterface:
    def __init__(self, core: InterbotixRobotXSCore, gripper_name: str, gripper_pressure: float = 0.5,
                 gripper_pressure_lower_limit: int = 150, gripper_pressure_upper_limit: int = 350):
        self.core, self.gripper_name, self.gripper_pressure = core, gripper_name, gripper_pressure
        self.gripper_pressure_lower_limit = gripper_pressure_lower_limit
        self.gripper_pressure_upper_limit = gripper_pressure_upper_limit
        self.gripper_value = gripper_pressure_lower_limit + gripper_pressure * (
            gripper_pressure_upper_limit - gripper_pressure_lower_limit)
        self.gripper_moving = False
        self.gripper_command_cmd = 0.0
        self.gripper_info = core.robot_get_robot_info("single", gripper_name)
        self.left_finger_index = core.js_index_map[self.gripper_info.joint_names[0]]
        self.left_finger_lower_limit = self.gripper_info.joint_lower_limits[0]
        self.left_finger_upper_limit = self.gripper_info.joint_upper_limits[0]
        core.world.add_timer(0.02, self.gripper_state)

    def gripper_state(self) -> None:
        """Stop the motor once the fingers pass their limit (a 50 Hz ROS timer on the robot)."""
        if self.gripper_moving:
            with self.core.js_mutex:
                gripper_pos = self.core.joint_states.position[self.left_finger_index]
            if (self.gripper_command_cmd > 0 and gripper_pos >= self.left_finger_upper_limit) or (
                    self.gripper_command_cmd < 0 and gripper_pos <= self.left_finger_lower_limit):
                self.gripper_command_cmd = 0.0
                self.core.world.command_gripper(0.0)
                self.gripper_moving = False

    def gripper_controller(self, effort: float, delay: float) -> None:
        self.gripper_command_cmd = effort
        with self.core.js_mutex:
            gripper_pos = self.core.joint_states.position[self.left_finger_index]
        if (effort > 0 and gripper_pos < self.left_finger_upper_limit) or (
                effort < 0 and gripper_pos > self.left_finger_lower_limit):
            self.core.world.command_gripper(effort)
            self.gripper_moving = True
            time.sleep(delay)

    def set_pressure(self, pressure: float) -> None:
        self.gripper_value = self.gripper_pressure_lower_limit + pressure * (
            self.gripper_pressure_upper_limit - self.gripper_pressure_lower_limit)


class _Ros1Gripper(InterbotixGripperXSInterface):
    def open(self, delay: float = 1.0) -> None:
        self.gripper_controller(self.gripper_value, delay)

    def close(self, delay: float = 1.0) -> None:
        self.gripper_controller(-self.gripper_value, delay)


class _Ros2Gripper(InterbotixGripperXSInterface):
    def release(self, delay: float = 1.0) -> None:
        self.gripper_controller(self.gripper_value, delay)

    def grasp(self, delay: float = 1.0) -> None:
        self.gripper_controller(-self.gripper_value, delay)


# ----------------------------------------------------------------------------- the manipulator, per layout


class InterbotixManipulatorXSRos1:
    """interbotix_xs_modules.arm.InterbotixManipulatorXS (ROS 1)."""

    def __init__(self, robot_model, group_name="arm", gripper_name="gripper", robot_name=None, moving_time=2.0,
                 accel_time=0.3, use_gripper=True, gripper_pressure=0.5, gripper_pressure_lower_limit=150,
                 gripper_pressure_upper_limit=350, init_node=True):
        self.dxl = InterbotixRobotXSCore(robot_model, robot_name, init_node, ros="ros1")
        self.arm = InterbotixArmXSInterface(self.dxl, robot_model, group_name, moving_time, accel_time)
        if gripper_name is not None:
            self.gripper = _Ros1Gripper(self.dxl, gripper_name, gripper_pressure, gripper_pressure_lower_limit,
                                        gripper_pressure_upper_limit)


class InterbotixManipulatorXSRos2:
    """interbotix_xs_modules.xs_robot.arm.InterbotixManipulatorXS (ROS 2)."""

    def __init__(self, robot_model, group_name="arm", gripper_name="gripper", robot_name=None, moving_time=2.0,
                 accel_time=0.3, gripper_pressure=0.5, gripper_pressure_lower_limit=150, gripper_pressure_upper_limit=350,
                 joint_state_topic="joint_states", logging_level=None, node_name="robot_manipulation", node=None,
                 start_on_init=True, args=None):
        self.core = InterbotixRobotXSCore(robot_model, robot_name, ros="ros2")
        self.arm = InterbotixArmXSInterface(self.core, robot_model, group_name, moving_time, accel_time)
        self.gripper = None
        if gripper_name is not None:
            self.gripper = _Ros2Gripper(self.core, gripper_name, gripper_pressure, gripper_pressure_lower_limit,
                                        gripper_pressure_upper_limit)

    def shutdown(self) -> None:
        self.core.destroy_node()


# ----------------------------------------------------------------------------- sys.modules


def install(world: EmulatedWorld, ros: str = "ros2") -> callable:
    """Put the emulated API of one layout (plus a minimal rclpy or rospy) into sys.modules; the other
    layout is made unimportable, as on a real install. Returns a function that restores sys.modules."""
    global _WORLD
    if ros not in ("ros1", "ros2"):
        raise ValueError(f"ros must be 'ros1' or 'ros2', got {ros!r}")
    saved: dict = {}

    def put(name, module):
        saved.setdefault(name, sys.modules.get(name, _ABSENT))
        sys.modules[name] = module

    def module(name, package=False, **attrs):
        m = types.ModuleType(name)
        m.__doc__ = f"clamkit emulator stand-in for {name} (clamkit.robot.emulate.interbotix)"
        if package:
            m.__path__ = []
        m.__dict__.update(attrs)
        put(name, m)
        return m

    module("interbotix_xs_modules", package=True)
    if ros == "ros2":
        state = {"ok": False}

        class SignalHandlerOptions:
            ALL, NO, SIGINT, SIGTERM = "ALL", "NO", "SIGINT", "SIGTERM"

        def init(args=None, context=None, domain_id=None, signal_handler_options=None):
            state["ok"] = True

        def try_shutdown(context=None, uninstall_handlers=None):
            state["ok"] = False

        rclpy = module("rclpy", package=True, ok=lambda context=None: state["ok"], init=init, try_shutdown=try_shutdown,
                       shutdown=try_shutdown)
        rclpy.signals = module("rclpy.signals", SignalHandlerOptions=SignalHandlerOptions)
        module("interbotix_xs_modules.xs_robot", package=True)
        module("interbotix_xs_modules.xs_robot.core", InterbotixRobotXSCore=InterbotixRobotXSCore)
        module("interbotix_xs_modules.xs_robot.gripper", InterbotixGripperXSInterface=_Ros2Gripper)
        module("interbotix_xs_modules.xs_robot.arm", InterbotixManipulatorXS=InterbotixManipulatorXSRos2,
               InterbotixArmXSInterface=InterbotixArmXSInterface)
        module("interbotix_common_modules", package=True)
        module("interbotix_common_modules.common_robot", package=True)
        module("interbotix_common_modules.common_robot.robot", robot_startup=lambda node=None: None,
               robot_shutdown=lambda node=None: None)
        put("interbotix_xs_modules.arm", None)  # the ROS 1 layout is not there
    else:
        module("interbotix_xs_modules.core", InterbotixRobotXSCore=InterbotixRobotXSCore)
        module("interbotix_xs_modules.gripper", InterbotixGripperXSInterface=_Ros1Gripper)
        module("interbotix_xs_modules.arm", InterbotixManipulatorXS=InterbotixManipulatorXSRos1,
               InterbotixArmXSInterface=InterbotixArmXSInterface)
        module("rospy", init_node=lambda name, argv=None, anonymous=False, log_level=None, disable_rostime=False,
               disable_rosout=False, disable_signals=False, xmlrpc_port=0, tcpros_port=0: None,
               signal_shutdown=lambda reason: None, sleep=time.sleep, is_shutdown=lambda: False)
        put("interbotix_xs_modules.xs_robot", None)  # the ROS 2 layout is not there
        put("interbotix_xs_modules.xs_robot.arm", None)
    _WORLD = world

    def restore() -> None:
        global _WORLD
        for name, old in saved.items():
            if old is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        if _WORLD is world:
            _WORLD = None

    return restore


_ABSENT = object()
