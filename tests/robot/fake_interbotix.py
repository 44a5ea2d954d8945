"""A fake Interbotix Python API (both layouts) put into sys.modules, recording every call.

    calls = install(monkeypatch, ros="ros2")   # or "ros1"
    robot = WidowXRobot(); robot.connect() ...
    calls.names()  -> ["rclpy.init", "InterbotixManipulatorXS", "robot_startup", "arm.set_joint_positions", ...]

It mirrors the real classes' names and signatures (interbotix_ros_toolboxes: `main` = ROS 1,
`humble` = ROS 2) and their behaviour where clamkit depends on it: set_joint_positions returns False
and sends nothing when a joint would leave its limits or exceed its velocity limit measured from the
last command; the joints jump to each accepted command (an ideal arm); go_to_home_pose is all zeros;
go_to_sleep_pose uses group_info.joint_sleep_positions; the gripper is open/close only.
"""

from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass, field

import numpy as np
from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.emulate import world as emulated

ARM = list(kin.JOINT_NAMES)
# wx250s motor config limits (rad) and the URDF velocity limit (pi rad/s): the emulator's, one definition.
LOWER, UPPER, VELOCITY = list(emulated.JOINT_LOWER), list(emulated.JOINT_UPPER), list(emulated.JOINT_VELOCITY)
SLEEP = [float(x) for x in wx.SLEEP]
FINGER_LO, FINGER_HI = kin.FINGER_CLOSED, kin.FINGER_OPEN


@dataclass
class Calls:
    """Every call into the fake API, in order: (name, args, kwargs)."""

    log: list = field(default_factory=list)

    def add(self, name, *args, **kwargs):
        self.log.append((name, args, kwargs))

    def names(self) -> list[str]:
        return [c[0] for c in self.log]

    def of(self, name: str) -> list:
        return [c for c in self.log if c[0] == name]


class JointState:
    def __init__(self):
        self.name = ARM + ["gripper", "left_finger", "right_finger"]
        self.position = list(SLEEP) + [0.0, FINGER_HI, -FINGER_HI]
        self.velocity = [0.0] * 9
        self.effort = [0.0] * 9


class GroupInfo:
    def __init__(self, mode="position"):
        self.joint_names = list(ARM)
        self.num_joints = 6
        self.joint_lower_limits = list(LOWER)
        self.joint_upper_limits = list(UPPER)
        self.joint_velocity_limits = list(VELOCITY)
        self.joint_sleep_positions = list(SLEEP)
        self.mode, self.profile_type = mode, "time"


class Core:
    def __init__(self, calls: Calls):
        self.calls = calls
        self.joint_states = JointState()
        self.js_mutex = threading.Lock()
        self.js_index_map = {n: i for i, n in enumerate(self.joint_states.name)}

    def robot_torque_enable(self, cmd_type, name, enable):
        self.calls.add("core.robot_torque_enable", cmd_type, name, enable)

    def set_arm(self, q):
        for n, v in zip(ARM, q):
            self.joint_states.position[self.js_index_map[n]] = float(v)

    def arm_q(self):
        return np.array([self.joint_states.position[self.js_index_map[n]] for n in ARM])


class Arm:
    def __init__(self, core: Core, calls: Calls, moving_time, accel_time, mode="position"):
        self.core, self.calls = core, calls
        self.group_info = GroupInfo(mode)
        self.moving_time, self.accel_time = moving_time, accel_time
        self.joint_commands = list(core.arm_q())
        self.track = True  # joints follow commands at once; False = the arm is stuck (lags)
        self.refuse_all = False

    def set_trajectory_time(self, moving_time=None, accel_time=None):
        if moving_time is not None:
            self.moving_time = moving_time
        if accel_time is not None:
            self.accel_time = accel_time

    def _check_joint_limits(self, positions):
        theta = [int(p * 1000) / 1000.0 for p in positions]
        for x in range(6):
            if not self.group_info.joint_lower_limits[x] <= theta[x] <= self.group_info.joint_upper_limits[x]:
                return False
            if abs(theta[x] - self.joint_commands[x]) / float(self.moving_time) > self.group_info.joint_velocity_limits[x]:
                return False
        return True

    def _publish(self, positions, moving_time, accel_time, blocking):
        self.set_trajectory_time(moving_time, accel_time)
        self.joint_commands = [float(p) for p in positions]
        if self.track:
            self.core.set_arm(self.joint_commands)

    def set_joint_positions(self, joint_positions, moving_time=None, accel_time=None, blocking=True):
        self.calls.add("arm.set_joint_positions", list(joint_positions), moving_time=moving_time,
                       accel_time=accel_time, blocking=blocking)
        self.set_trajectory_time(moving_time, accel_time)
        if not self.refuse_all and self._check_joint_limits(joint_positions):
            self._publish(joint_positions, moving_time, accel_time, blocking)
            return True
        self.calls.add("arm.refused", list(joint_positions))
        return False

    def go_to_home_pose(self, moving_time=None, accel_time=None, blocking=True):
        self.calls.add("arm.go_to_home_pose", moving_time=moving_time, accel_time=accel_time, blocking=blocking)
        self._publish([0.0] * 6, moving_time, accel_time, blocking)

    def go_to_sleep_pose(self, moving_time=None, accel_time=None, blocking=True):
        self.calls.add("arm.go_to_sleep_pose", moving_time=moving_time, accel_time=accel_time, blocking=blocking)
        self._publish(self.group_info.joint_sleep_positions, moving_time, accel_time, blocking)

    def get_joint_commands(self):
        return list(self.joint_commands)


class Gripper:
    """open()/close() (ROS 1) or release()/grasp() (ROS 2), PWM-style: the fingers go to a limit."""

    def __init__(self, core: Core, calls: Calls, gripper_name, ros: str, pressure):
        self.core, self.calls, self.ros = core, calls, ros
        self.gripper_name, self.pressure = gripper_name, pressure
        self.left_finger_index = core.js_index_map["left_finger"]
        self.left_finger_lower_limit, self.left_finger_upper_limit = FINGER_LO, FINGER_HI

    def _move(self, finger):
        self.core.joint_states.position[self.left_finger_index] = finger

    def set_pressure(self, pressure):
        self.calls.add("gripper.set_pressure", pressure)

    def _open(self, delay):
        self.calls.add(f"gripper.{'open' if self.ros == 'ros1' else 'release'}", delay=delay)
        self._move(FINGER_HI)

    def _close(self, delay):
        self.calls.add(f"gripper.{'close' if self.ros == 'ros1' else 'grasp'}", delay=delay)
        self._move(FINGER_LO)


class Ros1Gripper(Gripper):
    def open(self, delay=1.0):
        self._open(delay)

    def close(self, delay=1.0):
        self._close(delay)


class Ros2Gripper(Gripper):
    def release(self, delay=1.0):
        self._open(delay)

    def grasp(self, delay=1.0):
        self._close(delay)


@dataclass
class Options:
    """Knobs a test turns before connect(): a stuck arm, an overloaded joint, a dead xs_sdk."""

    arm_mode: str = "position"
    hang: bool = False        # the constructor blocks until `unblock` is set (ROS 2 core waiting for services)
    exit_on_init: bool = False  # the constructor calls sys.exit(1) (ROS 1 core without services)
    refuse_all: bool = False  # set_joint_positions always answers False
    lower: list | None = None  # joint limit overrides reported by group_info
    upper: list | None = None
    unblock: threading.Event = field(default_factory=threading.Event)
    instances: list = field(default_factory=list)


def _manipulator_class(calls: Calls, ros: str, opts: Options):
    class InterbotixManipulatorXS:
        def __init__(self, robot_model, group_name="arm", gripper_name="gripper", robot_name=None, moving_time=2.0,
                     accel_time=0.3, gripper_pressure=0.5, gripper_pressure_lower_limit=150,
                     gripper_pressure_upper_limit=350, **kwargs):
            calls.add("InterbotixManipulatorXS", robot_model, group_name=group_name, gripper_name=gripper_name,
                      robot_name=robot_name, moving_time=moving_time, accel_time=accel_time,
                      gripper_pressure=gripper_pressure, **kwargs)
            if opts.hang:
                opts.unblock.wait(30)
            if opts.exit_on_init:
                sys.exit(1)
            core = Core(calls)
            if ros == "ros2":
                self.core = core
            else:
                self.dxl = core
            self.arm = Arm(core, calls, moving_time, accel_time, opts.arm_mode)
            self.arm.refuse_all = opts.refuse_all
            if opts.lower is not None:
                self.arm.group_info.joint_lower_limits = list(opts.lower)
            if opts.upper is not None:
                self.arm.group_info.joint_upper_limits = list(opts.upper)
            gcls = Ros2Gripper if ros == "ros2" else Ros1Gripper
            self.gripper = gcls(core, calls, gripper_name, ros, gripper_pressure)
            opts.instances.append(self)

    return InterbotixManipulatorXS


def install(monkeypatch, ros: str = "ros2", opts: Options | None = None) -> Calls:
    """Put a fake Interbotix API (and rclpy or rospy) into sys.modules for this test."""
    calls, opts = Calls(), opts or Options()
    calls.opts = opts
    Manipulator = _manipulator_class(calls, ros, opts)

    def module(name, package=False, **attrs):
        m = types.ModuleType(name)
        if package:
            m.__path__ = []  # a package: its submodules are the fakes below (or importable by a test's finder)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)
        return m

    module("interbotix_xs_modules", package=True)
    if ros == "ros2":
        state = {"ok": False}

        class SignalHandlerOptions:
            ALL, NO, SIGINT, SIGTERM = "ALL", "NO", "SIGINT", "SIGTERM"

        def init(args=None, signal_handler_options="ALL"):
            calls.add("rclpy.init", signal_handler_options=signal_handler_options)
            state["ok"] = True

        def try_shutdown():
            calls.add("rclpy.try_shutdown")
            state["ok"] = False

        rclpy = module("rclpy", package=True, ok=lambda: state["ok"], init=init, try_shutdown=try_shutdown)
        rclpy.signals = module("rclpy.signals", SignalHandlerOptions=SignalHandlerOptions)
        module("interbotix_xs_modules.xs_robot", package=True)
        module("interbotix_xs_modules.xs_robot.arm", InterbotixManipulatorXS=Manipulator)
        module("interbotix_common_modules", package=True)
        module("interbotix_common_modules.common_robot", package=True)
        module("interbotix_common_modules.common_robot.robot",
               robot_startup=lambda node=None: calls.add("robot_startup"),
               robot_shutdown=lambda node=None: calls.add("robot_shutdown"))
        # The ROS 1 layout must not be found by accident.
        monkeypatch.setitem(sys.modules, "interbotix_xs_modules.arm", None)
    else:
        module("interbotix_xs_modules.arm", InterbotixManipulatorXS=Manipulator)
        module("rospy", init_node=lambda name, **kw: calls.add("rospy.init_node", name, **kw),
               signal_shutdown=lambda reason: calls.add("rospy.signal_shutdown", reason))
        # ROS 1 has no xs_robot subpackage: importing it fails like on a real ROS 1 install.
        monkeypatch.setitem(sys.modules, "interbotix_xs_modules.xs_robot", None)
        monkeypatch.setitem(sys.modules, "interbotix_xs_modules.xs_robot.arm", None)
    return calls
