"""The physical side of the rehearsal: our MuJoCo WidowX 250s scene (widowx_sim) running in real time
in a background thread, with the xs_sdk's servo behaviour in front of it.

What the emulated drivers (interbotix.py, realsense.py) see, and why it looks like the real arm:
- Each arm joint follows a Dynamixel time-based profile (xs_sdk sets Profile_Velocity = moving_time and
  Profile_Acceleration = accel_time in ms): a trapezoid from where the profile is now to the new goal,
  taking exactly moving_time, accel_time ramps at both ends. MuJoCo's position servos track that
  reference, so the measured joints lag it a little, as the real ones do.
- Joint states are sampled at the xs_sdk's publish rate (100 Hz), quantised like the XM430 registers
  (4096 ticks/rev, 0.229 rpm, 2.69 mA), and delivered `latency` seconds later with a header stamp.
  effort = what the xs_sdk reads for the joints' torques, gravity load included (widowx_common.joint_efforts,
  the same function widowx-sim's effort guard uses): present current in mA, the load shared by the shoulder's
  and elbow's two motors.
- The gripper is PWM driven: a positive effort opens, a negative one closes, with a force that grows
  with the effort; nothing positions it. On a block the fingers stop and keep squeezing.
- Torque off: the servos stop holding (our MJCF's gravity compensation keeps the arm from falling,
  which the real arm would do -- it must rest on its cradle first).
- Faults (inject()): "silent" (the servos stop answering: no joint state is read or published while it
  lasts; the motors keep executing their last goals), "late" (joint states delivered `latency` s late),
  "overload" (an external torque on one joint, e.g. the arm pressed against something).

numpy + mujoco only (no torch): this runs on the robot computer for a rehearsal.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.widowx_sim import WidowXSimRobot

log = logging.getLogger(__name__)

# wx250s motor config (interbotix_xsarm_control/config/wx250s.yaml) joint limits (rad) and the URDF velocity limit.
JOINT_LOWER = (-3.141583, -1.884956, -2.146755, -3.141583, -1.745329, -3.141583)
JOINT_UPPER = (3.141583, 1.989675, 1.605703, 3.141583, 2.146755, 3.141583)
JOINT_VELOCITY = (wx.JOINT_VELOCITY_LIMIT,) * 6
JS_RATE = 100.0           # Hz, xs_sdk's joint_state_publish_rate
POSITION_TICK = 2 * np.pi / 4096   # rad per Present_Position unit
VELOCITY_TICK = 0.229 * 2 * np.pi / 60  # rad/s per Present_Velocity unit (0.229 rpm)
PWM_MAX = 885             # Goal_PWM at 100 %
FINGER_FORCE = 5.0        # N the finger actuator pushes with at the gripper's upper pressure limit (350 PWM)
MAX_CATCH_UP = 0.1        # s of physics the thread may run at once after a stall; beyond that sim time skips


@dataclass
class JointSample:
    """One xs_sdk read of the motors: what a JointState message carries."""

    stamp: float              # time.time() of the read
    position: np.ndarray      # (9,) waist..wrist_rotate, gripper, left_finger, right_finger
    velocity: np.ndarray      # (9,)
    effort: np.ndarray        # (9,) mA


JS_NAMES = (*kin.JOINT_NAMES, "gripper", "left_finger", "right_finger")


class EmulatedWorld:
    """The WidowX scene in real time. Thread-safe: every access to the simulation holds `lock`."""

    def __init__(self, task: str = "reach-block", max_steps: int = 50, latency: float = 0.008, noise: float = 20.0,
                 seed: int = 0, servo_kp: float | None = None):
        self.sim = WidowXSimRobot(task=task, max_steps=max_steps)
        self.servo_kp = servo_kp  # None: the simulator's own (Dynamixel-like) servo; a value overrides its stiffness
        self.latency = float(latency)   # s from a motor read to the JointState reaching the Python API
        self.noise = float(noise)       # mA, standard deviation of the current reading
        self.lock = threading.RLock()
        self._rng = np.random.default_rng(seed)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.t = 0.0                     # simulated seconds (tracks the wall clock)
        self.success = False
        self.subscribers: list = []     # callables(JointSample): the emulated cores
        self.timers: list = []          # [period, next_due, fn]: the Interbotix gripper timers (50 Hz)
        self._pending: collections.deque = collections.deque()  # (due wall time, JointSample)
        self._faults: dict[str, dict] = {}
        self.skipped = 0.0               # s of physics skipped because the thread fell behind
        self.torque = np.ones(7, bool)   # 6 arm servos + gripper
        self.last_joints: np.ndarray | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Load the scene with the arm resting in its sleep pose, gripper open, and start the clock."""
        if self.running:
            return
        sim = self.sim
        sim.connect()
        sim.reset(0)
        m, d = sim._model, sim._data
        d.qpos[sim._arm_qpos] = wx.SLEEP
        d.ctrl[sim._arm_act] = wx.SLEEP
        d.qvel[:] = 0
        self._dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in kin.JOINT_NAMES])
        self._finger_dof = m.jnt_dofadr[m.joint("left_finger").id]
        self._finger_range0 = m.actuator_forcerange[sim._finger_act].copy()
        if self.servo_kp is not None:
            sim.set_servo_gains(self.servo_kp)
        self.profiles = [wx.Profile(float(q), float(q), 0.0, 0.0, 0.0) for q in wx.SLEEP]
        self.gripper_effort = 0.0
        self.gripper_goal = wx.gripper_to_finger(1.0)
        import mujoco

        mujoco.mj_forward(m, d)
        self.t, self.success = 0.0, False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="emulated-widowx", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=2.0)
        if self.sim.is_connected:
            self.last_joints = self.arm_joints()  # where the arm was left (tests check the safe pose)
        self.sim.disconnect()
        self.subscribers.clear()
        self.timers.clear()

    # ------------------------------------------------------------------ the clock

    def _run(self) -> None:
        import mujoco

        sim = self.sim
        m, d = sim._model, sim._data
        dt = m.opt.timestep
        wall0 = time.perf_counter()
        next_read = 0.0
        while not self._stop.is_set():
            now = time.perf_counter() - wall0
            with self.lock:
                if now - self.t > MAX_CATCH_UP:  # the machine stalled us: skip rather than run in a burst
                    self.skipped += now - self.t - MAX_CATCH_UP
                    self.t = now - MAX_CATCH_UP
                while self.t + dt <= now:
                    self._apply_controls(d)
                    mujoco.mj_step(m, d)
                    self.t += dt
                    self.success |= sim._task_success()
                    if self.t >= next_read:
                        next_read = self.t + 1.0 / JS_RATE
                        if "silent" not in self._active():
                            self._pending.append((time.time() + self._latency(), self._read(d)))
            self._deliver()
            self._run_timers()
            time.sleep(0.002)

    def _apply_controls(self, d) -> None:
        sim = self.sim
        q = d.qpos[sim._arm_qpos]
        ref = np.array([p.at(self.t) for p in self.profiles])
        d.ctrl[sim._arm_act] = np.where(self.torque[:6], ref, q)  # torque off: no restoring force
        f = d.qpos[sim._finger_qpos[0]]
        if self.torque[6] and self.gripper_effort != 0.0:
            goal = wx.gripper_to_finger(1.0 if self.gripper_effort > 0 else 0.0)
            force = FINGER_FORCE * min(abs(self.gripper_effort) / 350.0, PWM_MAX / 350.0)
        else:
            goal, force = f, self._finger_range0[0, 1]  # no PWM: the fingers stay where they are
        d.ctrl[sim._finger_act] = [goal, -goal]
        self.sim._model.actuator_forcerange[sim._finger_act] = [[-force, force]] * 2
        d.qfrc_applied[:] = 0.0
        load = self._active().get("overload")
        if load is not None:
            d.qfrc_applied[self._dof[load["joint"]]] = load["torque"]

    def _read(self, d) -> JointSample:
        sim = self.sim
        q = d.qpos[sim._arm_qpos]
        qd = d.qvel[self._dof]
        # xs_sdk derives the finger position from the gripper motor's encoder: 0.1 mm steps here.
        finger = round(float(d.qpos[sim._finger_qpos[0]]), 4)
        gripper_angle = (finger - kin.FINGER_CLOSED) / (kin.FINGER_OPEN - kin.FINGER_CLOSED) * 1.2  # motor angle, roughly
        pos = np.concatenate([np.round(q / POSITION_TICK) * POSITION_TICK, [gripper_angle, finger, -finger]])
        vel = np.concatenate([np.round(qd / VELOCITY_TICK) * VELOCITY_TICK, [0.0, d.qvel[self._finger_dof], 0.0]])
        current = np.where(self.torque[:6], sim.joint_efforts(), 0.0)  # torque off: no current (gravcomp holds it)
        current = current + self._rng.normal(0, self.noise, 6)  # mA, signed like the register
        eff = np.concatenate([np.round(current / wx.CURRENT_UNIT) * wx.CURRENT_UNIT, [self.gripper_effort, 0.0, 0.0]])
        return JointSample(time.time(), pos, vel, eff)

    def _deliver(self) -> None:
        now = time.time()
        ready = []
        with self.lock:
            while self._pending and self._pending[0][0] <= now:
                ready.append(self._pending.popleft()[1])
        for sample in ready[-1:]:  # a subscriber that fell behind gets the newest message
            for fn in list(self.subscribers):
                fn(sample)

    def _run_timers(self) -> None:
        now = time.monotonic()
        for timer in list(self.timers):
            if now >= timer[1]:
                timer[1] = now + timer[0]
                timer[2]()

    # ------------------------------------------------------------------ faults

    def inject(self, kind: str, duration: float | None = None, **params) -> None:
        """Start a fault now, for `duration` seconds (None: until clear()). Kinds: "silent";
        "late" (latency=s); "overload" (joint=name, torque=N m)."""
        if kind not in ("silent", "late", "overload"):
            raise ValueError(f"unknown fault '{kind}' (silent, late, overload)")
        if kind == "overload":
            params["joint"] = kin.JOINT_NAMES.index(params.get("joint", "shoulder"))
            params.setdefault("torque", 8.0)
        if kind == "late":
            params.setdefault("latency", 0.5)
        with self.lock:
            params["until"] = None if duration is None else self.t + float(duration)
            self._faults[kind] = params
        log.warning("emulator: fault '%s' injected%s", kind, "" if duration is None else f" for {duration:g} s")

    def clear(self, kind: str | None = None) -> None:
        with self.lock:
            if kind is None:
                self._faults.clear()
            else:
                self._faults.pop(kind, None)

    def _active(self) -> dict:
        for k in [k for k, f in self._faults.items() if f["until"] is not None and self.t >= f["until"]]:
            del self._faults[k]
        return self._faults

    def _latency(self) -> float:
        late = self._active().get("late")
        return late["latency"] if late is not None else self.latency

    # ------------------------------------------------------------------ what the emulated xs_sdk calls

    def command_arm(self, q, moving_time: float, accel_time: float) -> None:
        """A JointGroupCommand: new profile goals for the arm servos that have torque on."""
        with self.lock:
            for i, goal in enumerate(q):
                if self.torque[i]:
                    start = self.profiles[i].at(self.t)
                    self.profiles[i] = wx.Profile(start, float(goal), self.t, float(moving_time), float(accel_time))

    def command_gripper(self, effort: float) -> None:
        """A JointSingleCommand to the gripper in PWM mode: + opens, - closes, 0 stops."""
        with self.lock:
            self.gripper_effort = float(effort)

    def set_torque(self, index, enable: bool) -> None:
        with self.lock:
            d = self.sim._data
            q = d.qpos[self.sim._arm_qpos]
            for i in np.atleast_1d(index):
                self.torque[i] = bool(enable)
                if enable and i < 6:  # torque back on: hold where the joint is now
                    self.profiles[i] = wx.Profile(float(q[i]), float(q[i]), self.t, 0.0, 0.0)

    def add_timer(self, period: float, fn) -> None:
        self.timers.append([period, time.monotonic() + period, fn])

    # ------------------------------------------------------------------ the scene (what a person does by hand)

    def place_objects(self, seed: int | None) -> None:
        """Put the task's objects where widowx_sim's reset(seed) puts them; the arm stays where it is."""
        with self.lock:
            sim = self.sim
            d = sim._data
            keep = d.qpos[sim._arm_qpos].copy(), d.qpos[sim._finger_qpos].copy(), d.ctrl.copy()
            sim.reset(seed)  # places the objects (and jitters the arm, undone below)
            d.qpos[sim._arm_qpos], d.qpos[sim._finger_qpos], d.ctrl[:] = keep
            d.qvel[:] = 0
            import mujoco

            mujoco.mj_forward(sim._model, d)
            self.success = False

    def arm_joints(self) -> np.ndarray:
        """Ground truth (not what the driver sees): the arm joints now."""
        with self.lock:
            return self.sim._data.qpos[self.sim._arm_qpos].copy()

    def finger(self) -> float:
        with self.lock:
            return float(self.sim._data.qpos[self.sim._finger_qpos[0]])

    def task_state(self) -> dict:
        with self.lock:
            return self.sim.task_state()

    def render(self, renderer, depth_renderer=None) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB (and depth in metres) from the scene camera, with renderers owned by the calling thread
        (an EGL context belongs to the thread that made it)."""
        with self.lock:
            renderer.update_scene(self.sim._data, camera="cam")
            if depth_renderer is not None:
                depth_renderer.update_scene(self.sim._data, camera="cam")
        rgb = renderer.render()
        depth = depth_renderer.render() if depth_renderer is not None else None
        return rgb, depth
