"""The real WidowX 250 6DOF (wx250s) through Interbotix's Python API, as a clamkit Robot.

    with WidowXRobot() as arm:            # needs the xs_sdk node running:
        obs = arm.reset()                 #   ros2 launch interbotix_xsarm_control xsarm_control.launch.py robot_model:=wx250s
        arm.send_action(np.array([0.01, 0, 0, 0, 0, 0, 1.0]))
        arm.go_safe()                     # home, then the sleep pose (the arm rests on its cradle)

It speaks exactly the simulator's language (widowx_common): 7-D actions (Δxyz m, Δrpy rad, gripper
opening 0 closed .. 1 open) at 5 Hz, applied to the *measured* end-effector pose, clamped to the
workspace box, solved by the shared IK (clamkit.robot.kinematics), capped per tick; observation
{"state": EE xyz, EE rpy, gripper opening} (7,) float32 from the measured joints.

Interbotix API facts this relies on (interbotix_ros_toolboxes, branches main = ROS 1 and humble = ROS 2):
- ROS 2: `from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS`, then
  `robot_startup()` from interbotix_common_modules.common_robot.robot (spins the node in a thread)
  and `robot_shutdown()` at the end. Core at `bot.core`; gripper `release(delay)` / `grasp(delay)`.
  Galactic's variant has no robot_startup (it spins on construction) and ends with `bot.shutdown()`.
- ROS 1: `from interbotix_xs_modules.arm import InterbotixManipulatorXS(..., init_node=True)`; core
  at `bot.dxl`; gripper `open(delay)` / `close(delay)`. Its core calls sys.exit(1) when the xs_sdk
  services are missing; the ROS 2 core waits forever (we bound both with connect_timeout).
- `arm.set_joint_positions(q, moving_time, accel_time, blocking)` returns False and sends nothing
  when a joint would leave [joint_lower_limits, joint_upper_limits] or move faster than
  joint_velocity_limits, measured from the *last command* (arm.get_joint_commands()).
  Changing moving_time/accel_time costs a service call (motor registers), so it is kept constant.
- `arm.go_to_home_pose()` is all-zeros (arm stretched out, outside our workspace); reset() uses the
  shared HOME pose instead. `arm.go_to_sleep_pose()` uses group_info.joint_sleep_positions.
- `core.joint_states` (sensor_msgs/JointState, under core.js_mutex, indexed by core.js_index_map)
  carries effort = present current in mA on XM motors; `core.robot_torque_enable(cmd_type, name, enable)`.
- The gripper is PWM/current driven: release/grasp publish an effort and a 50 Hz timer stops it at
  the finger limits. So the gripper is open or closed, with hysteresis on the commanded opening.
- Signals: rclpy.init() and rospy.init_node() install SIGINT handlers that shut ROS down, which would
  leave nothing to move the arm to safety after Ctrl-C. We initialise ROS ourselves without them
  (rclpy: signal_handler_options=NO; rospy: disable_signals=True) and leave Ctrl-C to the runtime loop.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

import numpy as np

from clamkit.errors import MissingDependency, UserError
from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.base import DeviceNotConnectedError, Robot
from clamkit.robot.config_widowx import WidowXConfig
from clamkit.robot.widowx_common import EffortFault, WidowXFault  # noqa: F401 - where users catch them
from clamkit.specs import ActionSpec, ObservationSpec

log = logging.getLogger(__name__)

INSTALL_HINT = ("install ROS and the Interbotix arm packages with Interbotix's xsarm_amd64_install.sh "
                "(https://docs.trossenrobotics.com/interbotix_xsarms_docs/ros_interface/ros2/software_setup.html), "
                "source ~/interbotix_ws/install/setup.bash, and use a venv made with --system-site-packages")


def _stamp_seconds(stamp) -> float | None:
    """A ROS 2 (sec, nanosec) or ROS 1 (secs, nsecs) header stamp in seconds; None without one."""
    if stamp is None:
        return None
    if hasattr(stamp, "nanosec"):
        return stamp.sec + stamp.nanosec * 1e-9
    if hasattr(stamp, "nsecs"):
        return stamp.secs + stamp.nsecs * 1e-9
    return None


PATHS = {"ros2": "interbotix_xs_modules.xs_robot.arm", "ros1": "interbotix_xs_modules.arm"}


def _import_interbotix(ros: str):
    """(version, InterbotixManipulatorXS class) for "ros2", "ros1" or "auto" (ROS 2 first)."""
    absent = []
    for version in (["ros2", "ros1"] if ros == "auto" else [ros]):
        path = PATHS[version]
        try:
            return version, importlib.import_module(path).InterbotixManipulatorXS
        except ImportError as e:
            missing = getattr(e, "name", None) or ""
            if missing and (path == missing or path.startswith(missing + ".")):
                absent.append(path)  # this layout is not installed; try the other one
                continue
            # Interbotix is there but one of its ROS dependencies is not importable.
            raise MissingDependency(f"{path} could not import {missing or e} (is the ROS/Interbotix workspace "
                                    f"sourced?); {INSTALL_HINT}") from e
    raise MissingDependency(f"interbotix_xs_modules is not installed (no {' or '.join(absent)}); {INSTALL_HINT}")


class WidowXRobot(Robot):
    """A WidowX 250s driven through Interbotix's xs_sdk. See the module docstring for the API facts.

    Counters (read them after a run): ticks, joint_limit_hits, velocity_caps, refusals, ik_misses, gripper_switches.
    """

    name = "widowx"

    def __init__(self, config: WidowXConfig | None = None, **overrides):
        if config is not None and overrides:
            raise TypeError("pass either a WidowXConfig or keyword overrides, not both")
        try:
            self.config = config or WidowXConfig(**overrides)
        except (TypeError, ValueError) as e:
            raise UserError(f"widowx config: {e}") from None
        self.fps = float(self.config.fps)
        self.workspace = self.config.workspace  # the runtime's safety layer clamps to it too
        self._bot = self._core = self._arm = self._gripper = None
        self._ros: str | None = None
        self._shutdown = None  # how to stop the Interbotix node on disconnect
        self._gripper_open: bool | None = None
        self._at_sleep = False
        self._effort = wx.EffortGuard(self.config.effort_limit, self.config.effort_fault_ticks)
        self._refusal_streak = 0
        self.ticks = self.joint_limit_hits = self.velocity_caps = self.refusals = 0
        self.ik_misses = self.gripper_switches = 0
        self.last_command: wx.JointCommand | None = None
        self._episode_start: dict | None = None
        self._js_stamp: float | None = None  # newest joint-state stamp seen, and when (monotonic) it changed
        self._js_seen = 0.0

    # ------------------------------------------------------------------ specs

    @property
    def observation_spec(self) -> ObservationSpec:
        return wx.OBSERVATION_SPEC

    @property
    def action_spec(self) -> ActionSpec:
        return wx.ACTION_SPEC

    @property
    def is_connected(self) -> bool:
        return self._bot is not None

    # ------------------------------------------------------------------ connect / disconnect

    def connect(self) -> None:
        """Attach to the running xs_sdk node (nothing moves). Raises MissingDependency without
        Interbotix, UserError when the xs_sdk node cannot be found or is configured unusably."""
        if self.is_connected:
            return
        cfg = self.config
        version, Manipulator = _import_interbotix(cfg.ros)
        self._ros = version
        kwargs = dict(robot_model=cfg.robot_model, group_name=cfg.group_name, gripper_name=cfg.gripper_name,
                      robot_name=cfg.robot_name, moving_time=cfg.safe_moving_time, accel_time=cfg.safe_accel_time,
                      gripper_pressure=cfg.gripper_pressure,
                      gripper_pressure_lower_limit=cfg.gripper_pressure_lower_limit,
                      gripper_pressure_upper_limit=cfg.gripper_pressure_upper_limit)
        startup = shutdown = None
        if version == "ros2":
            self._init_rclpy()
            self._shutdown = ("rclpy", None)  # until the node is up, stopping ROS = rclpy.try_shutdown()
            try:
                robot_mod = importlib.import_module("interbotix_common_modules.common_robot.robot")
                startup, shutdown = robot_mod.robot_startup, ("robot_shutdown", robot_mod.robot_shutdown)
            except ImportError:  # Galactic: the manipulator spins its own thread and has shutdown()
                shutdown = ("bot.shutdown", None)
        else:
            rospy = importlib.import_module("rospy")
            # Our own node without rospy's SIGINT handler (see the module docstring); main thread only.
            rospy.init_node(f"{cfg.robot_name or cfg.robot_model}_clamkit", disable_signals=True)
            kwargs["init_node"] = False
            self._shutdown = ("rospy", rospy)
        bot = self._construct(Manipulator, kwargs)
        if startup is not None:
            startup()  # spins the Interbotix node in a background thread (after construction, as in their demos)
        if shutdown is not None:
            self._shutdown = shutdown
        self._bot = bot
        self._core = bot.core if version == "ros2" else bot.dxl
        self._arm, self._gripper = bot.arm, getattr(bot, "gripper", None)
        try:
            self._check_setup()
        except Exception:
            self._release()
            raise
        self._gripper_open, self._at_sleep = None, self._near(self._sleep_pose())
        log.info("connected to %s (%s, namespace /%s): limits %s, moving_time %.2f s", cfg.robot_model, version,
                 cfg.robot_name or cfg.robot_model, np.array2string(np.stack([self._lo, self._hi]), precision=2),
                 cfg.moving_time)

    def _init_rclpy(self) -> None:
        rclpy = importlib.import_module("rclpy")
        if rclpy.ok():
            log.warning("rclpy was already initialised by someone else: its SIGINT handler (if any) will shut ROS "
                        "down on Ctrl-C before the arm can reach its safe pose")
            return
        try:
            from rclpy.signals import SignalHandlerOptions

            rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        except (ImportError, TypeError):  # rclpy before Humble has no signal_handler_options
            log.warning("this rclpy cannot skip its SIGINT handler: Ctrl-C may stop ROS before go_safe()")
            rclpy.init()

    def _construct(self, Manipulator, kwargs):
        """Build the Interbotix object in a worker thread, so a missing xs_sdk node (ROS 2 waits for it
        forever; ROS 1 calls sys.exit) becomes a one-line UserError after connect_timeout seconds."""
        result: dict = {}

        def build():
            try:
                result["bot"] = Manipulator(**kwargs)
            except BaseException as e:  # noqa: BLE001 - SystemExit from the ROS 1 core included
                result["error"] = e

        worker = threading.Thread(target=build, name="interbotix-connect", daemon=True)
        worker.start()
        worker.join(self.config.connect_timeout)
        ns = self.config.robot_name or self.config.robot_model
        launch = (f"ros2 launch interbotix_xsarm_control xsarm_control.launch.py robot_model:={self.config.robot_model}"
                  if self._ros == "ros2" else
                  f"roslaunch interbotix_xsarm_control xsarm_control.launch robot_model:={self.config.robot_model}")
        if worker.is_alive() or isinstance(result.get("error"), SystemExit):
            self._stop_ros()
            raise UserError(f"no Interbotix xs_sdk node answered under /{ns} within {self.config.connect_timeout:g} s; "
                            f"is the arm powered and `{launch}` running?")
        if "error" in result:
            e = result["error"]
            self._stop_ros()
            raise UserError(f"Interbotix could not attach to /{ns}: {type(e).__name__}: {e}") from e
        return result["bot"]

    def _check_setup(self) -> None:
        """Compare what the xs_sdk reports with what our kinematics assume; read the joint limits."""
        info = self._arm.group_info
        names = tuple(info.joint_names)
        if names != kin.JOINT_NAMES:
            raise UserError(f"arm group '{self.config.group_name}' has joints {list(names)}; clamkit's wx250s "
                            f"kinematics expect {list(kin.JOINT_NAMES)} (is robot_model right?)")
        if getattr(info, "mode", "position") != "position":
            raise UserError(f"arm group '{self.config.group_name}' is in '{info.mode}' mode; clamkit sends joint "
                            "positions (set the group's operating mode to 'position' in the xsarm_control mode config)")
        if getattr(info, "profile_type", "time") != "time":
            log.warning("arm group profile_type is '%s', not 'time': moving_time will not mean seconds", info.profile_type)
        if self._gripper is None:
            raise UserError(f"no gripper '{self.config.gripper_name}' on this arm; the 7th action needs one")
        m = self.config.joint_limit_margin
        lo = np.maximum(np.asarray(info.joint_lower_limits, float), kin.JOINT_LOWER) + m
        hi = np.minimum(np.asarray(info.joint_upper_limits, float), kin.JOINT_UPPER) - m
        if (lo >= hi).any():
            raise UserError(f"joint limits from the xs_sdk leave no room: lower {lo}, upper {hi}")
        self._lo, self._hi = lo, hi
        vel = getattr(info, "joint_velocity_limits", None)
        vel = np.asarray(vel if vel is not None else [], float)
        self._vmax = vel if vel.shape == (6,) and (vel > 0).all() else np.full(6, wx.JOINT_VELOCITY_LIMIT)
        home = np.asarray(self.config.home)
        if ((home < lo) | (home > hi)).any():
            raise UserError(f"home pose {home} is outside the joint limits reported by the arm")
        gi = self._gripper
        self._finger_range = (float(getattr(gi, "left_finger_lower_limit", kin.FINGER_CLOSED)),
                              float(getattr(gi, "left_finger_upper_limit", kin.FINGER_OPEN)))

    def disconnect(self) -> None:
        """Torque off (only when resting in the sleep pose) and stop the Interbotix node."""
        if not self.is_connected:
            return
        try:
            if self.config.torque_off_on_disconnect:
                if self._at_sleep and self._near(self._sleep_pose()):
                    self._core.robot_torque_enable("group", self.config.group_name, False)
                    self._core.robot_torque_enable("single", self.config.gripper_name, False)
                    log.info("torque off (arm resting in its sleep pose)")
                else:
                    log.warning("arm is not resting in its sleep pose: torque stays ON (it would fall). "
                                "Call go_safe() first, or power it down by hand while supporting it")
        finally:
            self._release()

    def _release(self) -> None:
        bot = self._bot
        self._bot = self._core = self._arm = self._gripper = None
        self._stop_ros(bot)

    def _stop_ros(self, bot=None) -> None:
        how, fn = self._shutdown or (None, None)
        self._shutdown = None
        try:
            if how == "robot_shutdown":
                fn()
            elif how == "bot.shutdown" and bot is not None and hasattr(bot, "shutdown"):
                bot.shutdown()
            elif how == "rospy":
                fn.signal_shutdown("clamkit disconnect")
            elif how == "rclpy":
                importlib.import_module("rclpy").try_shutdown()
        except Exception as e:  # noqa: BLE001 - shutting down is best effort
            log.warning("stopping the Interbotix node: %s: %s", type(e).__name__, e)

    def _require(self):
        if self._bot is None:
            raise DeviceNotConnectedError(f"{self.name} is not connected")
        return self._arm

    # ------------------------------------------------------------------ state

    def _joint_states(self) -> tuple[np.ndarray, np.ndarray | None, float]:
        """Measured arm joints (6,), their efforts (6,) or None, and the left finger position (m)."""
        core = self._core
        with core.js_mutex:
            js = core.joint_states
            idx = [core.js_index_map[n] for n in kin.JOINT_NAMES]
            q = np.array([js.position[i] for i in idx], dtype=float)
            effort = np.array([js.effort[i] for i in idx], dtype=float) if len(js.effort) > max(idx) else None
            finger = float(js.position[self._gripper.left_finger_index])
        return q, effort, finger

    def joint_positions(self) -> np.ndarray:
        """The 6 measured arm joint angles (rad)."""
        self._require()
        return self._joint_states()[0]

    def gripper_opening(self) -> float:
        """Measured opening 0 (closed) .. 1 (open) from the left finger position."""
        self._require()
        lo, hi = self._finger_range
        return float(np.clip((self._joint_states()[2] - lo) / (hi - lo), 0.0, 1.0))

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, rpy) of the end-effector point from the measured joints (the safety layer uses it)."""
        return kin.ee_pose(self.joint_positions())

    def get_observation(self) -> dict[str, np.ndarray]:
        self._require()
        q, _, finger = self._joint_states()
        lo, hi = self._finger_range
        return {"state": wx.make_state(q, float(np.clip((finger - lo) / (hi - lo), 0.0, 1.0)))}

    # ------------------------------------------------------------------ actions

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Measured pose + action -> workspace clamp -> IK -> joint-limit / velocity checks ->
        set_joint_positions (non-blocking, moving_time); gripper open/close on a change. Returns
        the action actually sent: the EE delta the joint targets produce, and 1.0/0.0 for the gripper."""
        arm = self._require()
        cfg = self.config
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), wx.ACTION_SPEC.low, wx.ACTION_SPEC.high)
        if a.shape != (7,) or not np.isfinite(a).all():
            raise ValueError(f"{self.name}: need 7 finite action values, got {action!r} (the safety layer should hold)")
        self._check_joint_state_age()
        q, effort, _ = self._joint_states()
        self._effort.check(effort)  # the rule widowx-sim applies too (widowx_common.EffortGuard)
        self.ticks += 1
        self._at_sleep = False

        # One tick may use velocity_margin of each joint's limit over moving_time, and at most max_joint_step.
        step = wx.joint_steps(cfg.moving_time, cfg.max_joint_step, self._vmax, cfg.velocity_margin)  # (6,)
        cmd = wx.action_to_joint_command(q, a, self.workspace, max_joint_step=float(step.min()))  # = wx.tick_joint_step
        if not cmd.ik.success:
            self.ik_misses += 1
            log.debug("IK best effort: pos_err %.4f m rot_err %.3f rad", cmd.ik.pos_err, cmd.ik.rot_err)
        target = cmd.q.copy()
        send_arm = True
        outside = (target < self._lo) | (target > self._hi)
        if outside.any():
            self.joint_limit_hits += 1
            names = [kin.JOINT_NAMES[i] for i in np.flatnonzero(outside)]
            if cfg.joint_limit_mode == "refuse":
                log.warning("tick %d: joint target beyond the limits on %s: arm command refused (holding)", self.ticks, names)
                send_arm = False
            else:
                log.debug("tick %d: joint targets clipped to the limits on %s", self.ticks, names)
                target = np.clip(target, self._lo, self._hi)
        if send_arm:
            # Interbotix checks speed against its *last command*, which the measured joints lag.
            last = np.asarray(arm.get_joint_commands(), dtype=float)
            capped = np.clip(target, last - step, last + step)
            if (capped != target).any():
                self.velocity_caps += 1
                target = np.clip(capped, self._lo, self._hi)
            ok = arm.set_joint_positions(target.tolist(), moving_time=cfg.moving_time, accel_time=cfg.accel_time,
                                         blocking=False)
            if ok is False:
                self.refusals += 1
                self._refusal_streak += 1
                log.warning("tick %d: Interbotix refused the joint command %s", self.ticks, np.round(target, 3))
                if self._refusal_streak >= cfg.max_refusals:
                    raise WidowXFault(f"Interbotix refused {self._refusal_streak} joint commands in a row "
                                      "(joint or velocity limits); stopping")
                send_arm = False
            else:
                self._refusal_streak = 0
        gripper_open = self._command_gripper(float(a[6]))
        self.last_command = cmd

        sent = np.zeros(7)
        if send_arm:
            xyz, rpy = kin.ee_pose(q)
            txyz, trpy = kin.ee_pose(target)
            sent[:3], sent[3:6] = txyz - xyz, kin.wrap_angle(trpy - rpy)
        sent[6] = 1.0 if gripper_open else 0.0
        return np.clip(sent, wx.ACTION_SPEC.low, wx.ACTION_SPEC.high).astype(np.float32)

    def _check_joint_state_age(self) -> None:
        """WidowXFault when the newest joint state is older than joint_state_timeout: the xs_sdk stopped
        publishing (a servo that stops answering makes its reads fail) or its messages arrive late. Age =
        the longer of wall clock minus the header stamp and how long the stamp has not changed (the latter
        also works when the stamp is on another clock, e.g. ROS sim time)."""
        limit = self.config.joint_state_timeout
        if limit is None:
            return
        with self._core.js_mutex:
            stamp = _stamp_seconds(getattr(getattr(self._core.joint_states, "header", None), "stamp", None))
        if stamp is None:
            return
        now = time.monotonic()
        if stamp != self._js_stamp:
            self._js_stamp, self._js_seen = stamp, now
        late = time.time() - stamp
        age = max(now - self._js_seen, late if 0 <= late < 60 else 0.0)
        if age > limit:
            raise WidowXFault(f"joint states are {age:.2f} s old (limit {limit:g} s): the xs_sdk is not publishing "
                              "(a servo not answering?) or its messages arrive late; stopping")

    def _command_gripper(self, g: float, delay: float = 0.0) -> bool:
        """Open above gripper_open_above, close below gripper_close_below, else keep; publish only on a change."""
        cfg = self.config
        want = self._gripper_open
        if g >= cfg.gripper_open_above:
            want = True
        elif g <= cfg.gripper_close_below:
            want = False
        elif want is None:
            want = g >= 0.5
        if want != self._gripper_open:
            gr = self._gripper
            if self._ros == "ros1":
                (gr.open if want else gr.close)(delay=delay)
            else:
                (gr.release if want else gr.grasp)(delay=delay)
            self._gripper_open = want
            self.gripper_switches += 1
        return want

    # ------------------------------------------------------------------ poses

    def _sleep_pose(self) -> np.ndarray:
        return np.asarray(self._arm.group_info.joint_sleep_positions, dtype=float)

    def _near(self, pose: np.ndarray) -> bool:
        q = self._joint_states()[0]
        return bool(np.all(np.abs(kin.wrap_angle(q - pose)) <= self.config.sleep_tolerance))

    def _slow_times(self, target) -> tuple[float, float]:
        """moving/accel time for a big move: no joint faster than safe_joint_speed."""
        cfg = self.config
        last = np.asarray(self._arm.get_joint_commands(), dtype=float)
        mt = max(cfg.safe_moving_time, float(np.max(np.abs(np.asarray(target) - last))) / cfg.safe_joint_speed)
        return mt, min(cfg.safe_accel_time, mt / 2)

    def _move_joints(self, target, what: str) -> None:
        """A slow blocking move to joint targets (home, lift); raises WidowXFault when Interbotix refuses."""
        target = [float(x) for x in target]
        mt, at = self._slow_times(target)
        log.info("moving to %s (%.1f s)", what, mt)
        # Interbotix checks the speed against the moving_time in force *before* the call (check_joint_limits
        # runs before publish_positions applies the new one): set the slow timing first, or a far move is
        # refused as too fast for the 0.2 s tick timing (found by the emulator, robot/emulate).
        self._arm.set_trajectory_time(moving_time=mt, accel_time=at)
        if self._arm.set_joint_positions(target, moving_time=mt, accel_time=at, blocking=True) is False:
            raise WidowXFault(f"Interbotix refused the move to {what} {np.round(target, 3)}")

    def home(self) -> None:
        """Go to the configured home (ready) pose, slowly."""
        self._require()
        self._at_sleep = False
        self._move_joints(self.config.home, "home")

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Home pose with the gripper open. The real world ignores the seed: set the scene by hand."""
        self._require()
        self._lift()
        self.home()
        self._gripper_open = None  # always re-send "open": someone may have moved the fingers by hand
        self._command_gripper(1.0, delay=0.5)
        self._effort.reset()
        self._refusal_streak = 0
        self._episode_start = self.counters()
        return self.get_observation()

    def _lift(self) -> None:
        """Before a joint-space move to home from low over the table, raise the gripper straight up to
        the home height, so the interpolated move does not sweep it through the table or objects."""
        q = self._joint_states()[0]
        xyz, rpy = kin.ee_pose(q)
        home_z = kin.ee_pose(np.asarray(self.config.home))[0][2]
        if xyz[2] >= home_z - 0.02 or self._near(self._sleep_pose()):
            return
        ik = kin.solve_ik((xyz[0], xyz[1], home_z), rpy, q0=q, restarts=0)
        if ik.success and ((ik.q >= self._lo) & (ik.q <= self._hi)).all():
            self._move_joints(ik.q, "lift")
        else:
            log.warning("could not lift the gripper straight up first (IK); moving to home directly")

    def go_safe(self) -> None:
        """Lift, go to the home pose, then to Interbotix's sleep pose (resting on the cradle). Blocking."""
        if not self.is_connected:
            return
        self._lift()
        self.home()
        mt, at = self._slow_times(self._sleep_pose())
        log.info("moving to the sleep pose (%.1f s)", mt)
        self._arm.go_to_sleep_pose(moving_time=mt, accel_time=at, blocking=True)
        self._at_sleep = self._near(self._sleep_pose())
        if not self._at_sleep:
            log.warning("the arm did not reach its sleep pose (measured %s)", np.round(self._joint_states()[0], 3))

    def counters(self) -> dict:
        """How often each check fired this session."""
        return {"ticks": self.ticks, "joint_limit_hits": self.joint_limit_hits, "velocity_caps": self.velocity_caps,
                "refusals": self.refusals, "ik_misses": self.ik_misses, "gripper_switches": self.gripper_switches}

    def episode_info(self) -> dict:
        """This episode's counters (since reset()); the runtime logs them with the episode's outcome."""
        base = self._episode_start or {}
        return {k: v - base.get(k, 0) for k, v in self.counters().items()}
