"""Our WidowX 250s in MuJoCo as a Robot and four tabletop tasks (their scripted IK experts and play policy are
in clamkit.record.widowx_sim).

The simulated arm speaks the real arm's language (widowx_common): the same 7-D action (EE deltas +
absolute gripper) turned into joint targets by the same IK, the same 7-D state (EE xyz, rpy,
gripper opening) computed by the same forward kinematics, 5 Hz. A policy trained here sees what it
will see on the real robot, minus the camera's realism. Its servos are as stiff and as strong as the real ones
(widowx_common.servo_gains: an XM430 at the xs_sdk's P gain 800 gives ~19 N m/rad, damped by its back-EMF; each
arm joint's torque, gravity load included, saturates at its servos' stall torque, widowx_common.ARM_SERVOS), and it
applies the real driver's effort rule (widowx_common.EffortGuard, same limit and tick count) to the efforts the
xs_sdk would report for those torques: a policy that would press hard enough to fault the real arm faults here.

Tasks (the objects a task does not use are parked off the table), mirroring the paper's real-robot tasks:
- reach-block: bring the end-effector point within 3 cm of a 4 cm red cube placed at random.
- push-button: press a spring-loaded button at a random spot at least 8 mm down (of 15 mm travel).
- place-block: grasp the cube and put it into an open pot (11 cm inside) placed at random (the paper's
  pick-and-place into a pot): success when the cube rests inside the pot's walls, below its rim.
- close-drawer: push a drawer that stands 4-8 cm open back into its cabinet (the paper's articulated
  microwave-closing task): success when it is within 1 cm of closed.

Visual variation (VisualVariation, off by default): table and object colours, lighting, a small camera
pose jitter and visual-only distractor objects, drawn per episode from the reset seed on their own
random stream, so the task layout (and so the expert's actions) is the same with and without it.

Experts may read privileged simulator state (task_state()); policies see only state and images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clamkit.errors import UserError, require
from clamkit.robot import kinematics as kin
from clamkit.robot import widowx_common as wx
from clamkit.robot.base import DeviceNotConnectedError, Robot
from clamkit.specs import ActionSpec, ObservationSpec

log = logging.getLogger(__name__)

SCENE_XML = Path(__file__).with_name("assets") / "widowx_scene.xml"
TASKS = ("reach-block", "push-button", "place-block", "close-drawer")
# Where objects are placed (m, base frame), inside the workspace with room for the gripper around them.
OBJECT_LOW, OBJECT_HIGH = np.array([0.22, -0.16]), np.array([0.38, 0.16])
BLOCK_HALF = 0.02
REACH_TOLERANCE = 0.03   # EE point to block centre (m)
PRESS_DEPTH = 0.008      # cap travel (m) that counts as pressed
CAP_TOP = 0.044          # button cap top above the table when released (housing 0.024 + cap 0.02)
START_JITTER = 0.05      # rad per arm joint around HOME at reset (~2 cm at the EE)
POT_INNER = 0.055        # half the pot's inside width (m)
POT_RIM = 0.045          # wall height
POT_SEPARATION = 0.13    # least block-to-pot distance at reset (the open fingers must not touch the pot)
# The cabinet stands beyond the object area facing the base, its drawer pulled out toward the arm.
CABINET_RANGE = (0.41, 0.44)        # distance of its centre from the base (m)
CABINET_BEARING = (-0.35, 0.35)     # direction from the base (rad)
DRAWER_OPEN = (0.04, 0.08)          # how far the drawer stands out at reset (m)
DRAWER_CLOSED = 0.01                # within this of closed counts as closed
DRAWER_FRONT = 0.069                # drawer front face, cabinet centre to front when closed (m)
PARKED = {"block": np.array([0.0, -1.5, -0.75 + BLOCK_HALF]), "button": np.array([0.0, 1.5, -0.75]),
          "pot": np.array([-0.5, -1.5, -0.75]), "cabinet": np.array([-0.5, 1.5, -0.75])}


@dataclass(frozen=True)
class VisualVariation:
    """What reset() varies in the rendered scene, per episode (all off by default). Physics never changes:
    distractors are visual only, colours and lights do not touch contacts."""

    colors: bool = False
    """Table and task-object colours (uniform RGB)."""
    lighting: bool = False
    """Headlight and top-light strength, top-light direction."""
    camera: bool = False
    """Camera position and look-at point each jittered by up to CAMERA_JITTER per axis."""
    distractors: bool = False
    """Three visual-only shapes (cylinder, sphere, box) at random free spots on the table."""

    KINDS = ("colors", "lighting", "camera", "distractors")

    @property
    def any(self) -> bool:
        return self.colors or self.lighting or self.camera or self.distractors

    @classmethod
    def parse(cls, value) -> "VisualVariation":
        """None/False/"none" -> off; True/"all" -> everything; "colors,camera" -> those; a dict -> fields."""
        if isinstance(value, cls):
            return value
        if value is None or value is False or value in ("", "none"):
            return cls()
        if value is True or value == "all":
            return cls(True, True, True, True)
        if isinstance(value, dict):
            unknown = set(value) - set(cls.KINDS)
            if unknown:
                raise UserError(f"visual variation: unknown {', '.join(sorted(unknown))} (choose from {', '.join(cls.KINDS)})")
            return cls(**{k: bool(v) for k, v in value.items()})
        names = [n.strip() for n in str(value).split(",") if n.strip()]
        bad = [n for n in names if n not in cls.KINDS]
        if bad:
            raise UserError(f"visual variation: unknown {', '.join(bad)} (all, none, or a comma list of {', '.join(cls.KINDS)})")
        return cls(**{n: True for n in names})

    def to_json(self) -> list[str]:
        return [k for k in self.KINDS if getattr(self, k)]


CAMERA_JITTER = 0.02  # m, per axis, on the camera and on its look-at point (~2 deg of view direction)
TABLE_AREA = (np.array([0.05, -0.45]), np.array([0.55, 0.45]))  # where distractors may stand (m)
_TASK_GEOMS = ("block", "button_cap", "button_housing", "pot_base", "pot_wall1", "pot_wall2", "pot_wall3", "pot_wall4",
               "cabinet", "drawer_body", "drawer_front")
_DISTRACTORS = ("distractor0", "distractor1", "distractor2")


class _SceneLooks:
    """The scene's default looks, and apply(): restore them, then draw this episode's variation."""

    def __init__(self, model):
        self.model = model
        self.table_mat = model.material("table").id
        self.geoms = {n: model.geom(n).id for n in _TASK_GEOMS}
        self.cam, self.look_at = model.camera("cam").id, model.body("look_at").id
        self.distractors = [model.body(n).id for n in _DISTRACTORS]
        self.distractor_geoms = [model.geom(n).id for n in _DISTRACTORS]
        self.light = model.light("top").id
        self.default = {k: getattr(model, k).copy() for k in ("mat_rgba", "geom_rgba", "light_diffuse", "light_dir",
                                                               "cam_pos", "body_pos")}
        self.headlight = (model.vis.headlight.ambient.copy(), model.vis.headlight.diffuse.copy())

    def apply(self, vary: VisualVariation, rng: np.random.Generator | None, avoid: list[np.ndarray]) -> None:
        m = self.model
        for k, v in self.default.items():  # restore first, so "off" renders exactly the default scene
            if k != "body_pos":
                getattr(m, k)[:] = v
        m.body_pos[self.distractors + [self.look_at]] = self.default["body_pos"][self.distractors + [self.look_at]]
        m.vis.headlight.ambient[:], m.vis.headlight.diffuse[:] = self.headlight
        if not vary.any:
            return
        rng = rng or np.random.default_rng()
        if vary.colors:
            m.mat_rgba[self.table_mat, :3] = rng.uniform(0.25, 0.95, 3)
            # one colour per object (its parts share it), the button housing stays a neutral grey
            per_object = {"block": rng.uniform(0.05, 0.95, 3), "button": rng.uniform(0.05, 0.95, 3),
                          "pot": rng.uniform(0.05, 0.95, 3), "cabinet": rng.uniform(0.4, 0.95, 3),
                          "drawer": rng.uniform(0.05, 0.95, 3)}
            for name, gid in self.geoms.items():
                key = next(k for k in per_object if name.startswith(k))
                if name != "button_housing":
                    m.geom_rgba[gid, :3] = per_object[key]
        if vary.lighting:
            m.vis.headlight.ambient[:] = rng.uniform(0.15, 0.5)
            m.vis.headlight.diffuse[:] = rng.uniform(0.25, 0.6)
            m.light_diffuse[self.light] = rng.uniform(0.3, 0.8)
            d = np.array([*rng.uniform(-0.5, 0.5, 2), -1.0])
            m.light_dir[self.light] = d / np.linalg.norm(d)
        if vary.camera:
            m.cam_pos[self.cam] += rng.uniform(-CAMERA_JITTER, CAMERA_JITTER, 3)
            m.body_pos[self.look_at] += rng.uniform(-CAMERA_JITTER, CAMERA_JITTER, 3)
        if vary.distractors:
            taken = [np.asarray(a, float) for a in avoid] + [np.zeros(2)]  # task objects and the robot's base
            for body, geom in zip(self.distractors, self.distractor_geoms):
                for _ in range(100):
                    xy = rng.uniform(*TABLE_AREA)
                    if min(np.linalg.norm(xy - t) for t in taken) > 0.1:
                        break
                taken.append(xy)
                m.body_pos[body] = [xy[0], xy[1], 0.0]
                m.geom_rgba[geom, :3] = rng.uniform(0.05, 0.95, 3)


def _import_mujoco():
    return require("mujoco", "sim")


class WidowXSimRobot(Robot):
    """The simulated WidowX 250s on a table. reset(seed) places the task's object from that seed."""

    name = "widowx-sim"
    fps = wx.FPS
    capture_size = (640, 480)  # the sim camera renders what a D435 captures, then crops and resizes like it

    def __init__(self, task: str = "reach-block", max_steps: int = 50, workspace: wx.Workspace | None = None,
                 vary: "VisualVariation | str | None" = None, effort_limit: float | None = wx.EFFORT_LIMIT,
                 effort_fault_ticks: int = wx.EFFORT_FAULT_TICKS, profile_start: str = "reference"):
        """effort_limit / effort_fault_ticks: the real driver's effort rule (WidowXConfig's fields, same defaults);
        effort_limit None turns it off. profile_start: where each tick's servo profile starts, "reference" (where
        the previous tick's profile ended: a Dynamixel's profile keeps its own position and velocity trajectory
        and continues it on a new goal, e-Manual "Velocity Override"; the driver emulator does the same) or
        "measured" (the joints as they are, which trail the reference by ~45 ms of motion and more when something
        holds the arm back)."""
        if task not in TASKS:
            raise UserError(f"unknown widowx-sim task '{task}' (choose from {', '.join(TASKS)})")
        if int(max_steps) < 1:
            raise UserError(f"max_steps must be >= 1, got {max_steps}")
        self.task, self.max_steps = task, int(max_steps)
        self.vary = VisualVariation.parse(vary)
        self.workspace = workspace or wx.DEFAULT_WORKSPACE
        if effort_limit is not None and not float(effort_limit) > 0:
            raise UserError(f"effort_limit must be > 0 or None, got {effort_limit}")
        if int(effort_fault_ticks) < 1:
            raise UserError(f"effort_fault_ticks must be >= 1, got {effort_fault_ticks}")
        self._effort = wx.EffortGuard(effort_limit, effort_fault_ticks)
        if profile_start not in ("measured", "reference"):
            raise UserError(f"profile_start must be 'measured' or 'reference', got {profile_start!r}")
        self.profile_start = profile_start
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
        self._arm_dof = np.array([model.joint(n).dofadr[0] for n in kin.JOINT_NAMES])
        # The servos' stiffness and damping (widowx_common.servo_gains: XM430s at the xs_sdk's P gain 800, about
        # 19 N m/rad per motor) and strength: each arm joint's total actuator torque -- the position servo plus
        # the gravity compensation, which the real servos also have to supply -- saturates at its stall torque.
        self.set_servo_gains(*wx.servo_gains())
        for name, limit in zip(kin.JOINT_NAMES, wx.STALL_TORQUE):
            j = model.joint(name).id
            model.jnt_actgravcomp[j] = 1
            model.jnt_actfrclimited[j] = 1
            model.jnt_actfrcrange[j] = (-limit, limit)
        self._finger_qpos = [model.joint(n).qposadr[0] for n in ("left_finger", "right_finger")]
        self._finger_act = [model.actuator(n).id for n in ("left_finger", "right_finger")]
        self._block_qpos = model.joint("block").qposadr[0]
        self._button_qpos = model.joint("button").qposadr[0]
        self._button_body = model.body("button").id
        self._pot_body, self._cabinet_body = model.body("pot").id, model.body("cabinet").id
        self._drawer_qpos = model.joint("drawer").qposadr[0]
        self._visuals = _SceneLooks(model)  # the default looks, restored by reset() when variation is off
        self._ee_site = model.site("ee").id
        self._substeps = int(round(1.0 / (self.fps * model.opt.timestep)))  # 100 x 2 ms per 5 Hz tick

    def set_servo_gains(self, kp, kv=None) -> None:
        """The arm's position servos: stiffness kp (N m/rad) and, if given, damping kv (N m s/rad), per joint or one
        for all. Position actuator: force = kp (ctrl - q) - kv qdot."""
        model, _ = self._require()
        model.actuator_gainprm[self._arm_act, 0] = kp
        model.actuator_biasprm[self._arm_act, 1] = -np.asarray(kp)
        if kv is not None:
            model.actuator_biasprm[self._arm_act, 2] = -np.asarray(kv)

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
        place = dict(PARKED)
        cabinet_yaw, drawer = 0.0, 0.0
        xy = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
        if self.task in ("reach-block", "place-block"):
            place["block"] = np.array([xy[0], xy[1], BLOCK_HALF])
        elif self.task == "push-button":
            place["button"] = np.array([xy[0], xy[1], 0.0])
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        if self.task == "place-block":
            pot = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
            while np.linalg.norm(pot - xy) < POT_SEPARATION:
                pot = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
            place["pot"] = np.array([pot[0], pot[1], 0.0])
        elif self.task == "close-drawer":
            r, cabinet_yaw = rng.uniform(*CABINET_RANGE), rng.uniform(*CABINET_BEARING)
            place["cabinet"] = np.array([r * np.cos(cabinet_yaw), r * np.sin(cabinet_yaw), 0.0])
            drawer = -rng.uniform(*DRAWER_OPEN)
        data.qpos[self._block_qpos:self._block_qpos + 7] = [*place["block"], np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        data.qpos[self._drawer_qpos] = drawer
        model.body_pos[self._button_body] = place["button"]
        model.body_pos[self._pot_body] = place["pot"]
        model.body_pos[self._cabinet_body] = place["cabinet"]
        model.body_quat[self._cabinet_body] = [np.cos(cabinet_yaw / 2), 0.0, 0.0, np.sin(cabinet_yaw / 2)]
        # Looks come last and from their own stream: the layout above is the same with variation on or off.
        self._visuals.apply(self.vary, None if seed is None else np.random.default_rng([int(seed), 0x5EE]),
                            avoid=[place[k][:2] for k in ("block", "button", "pot", "cabinet")])
        mujoco.mj_forward(model, data)
        for _ in range(25):  # let contacts settle (50 ms)
            mujoco.mj_step(model, data)
        self._success, self._steps, self.last_command = False, 0, None
        self._effort.reset()
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

    def joint_torques(self) -> np.ndarray:
        """The torque (N m) each arm joint's servos exert now: position servo + gravity load, within the stall torque."""
        _, data = self._require()
        return data.qfrc_actuator[self._arm_dof].copy()

    def joint_efforts(self) -> np.ndarray:
        """The efforts (mA) the real arm's joint_states would report for joint_torques() (widowx_common.joint_efforts)."""
        return wx.joint_efforts(self.joint_torques())

    def get_observation(self) -> dict[str, np.ndarray]:
        return {"state": wx.make_state(self.joint_positions(), self.gripper_opening())}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        import mujoco

        model, data = self._require()
        a = np.clip(np.asarray(action, dtype=np.float32), wx.ACTION_SPEC.low, wx.ACTION_SPEC.high)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: non-finite action {a} (the runtime safety layer should have held)")
        self._effort.check(self.joint_efforts())  # the real driver's rule, at the same point of the tick: EffortFault
        # The real driver's per-tick joint step (its velocity cap, 0.565 rad at 5 Hz), so both arms take the same steps.
        cmd = wx.action_to_joint_command(self.joint_positions(), a, self.workspace,
                                         max_joint_step=wx.tick_joint_step(1.0 / self.fps))
        if not cmd.ik.success:
            log.debug("IK best effort: pos_err %.4f m rot_err %.3f rad", cmd.ik.pos_err, cmd.ik.rot_err)
        # The servos follow an xs_sdk time profile to the target over the tick (moving_time = 1/fps, accel_time a
        # quarter of it: the real driver's defaults, robot/config_widowx.py), as on the arm and in the emulator.
        T = 1.0 / self.fps
        start = self.joint_positions()
        if self.profile_start == "reference" and self.last_command is not None:
            start = self.last_command.q  # the previous profile ended there (moving_time = the tick), at rest
        profiles = [wx.Profile(float(p0), float(p1), 0.0, T, T / 4) for p0, p1 in zip(start, cmd.q)]
        self._set_gripper_ctrl(cmd.gripper)
        for k in range(self._substeps):
            data.ctrl[self._arm_act] = [p.at((k + 1) * model.opt.timestep) for p in profiles]
            mujoco.mj_step(model, data)
            self._success |= self._task_success()
        self._steps += 1
        self.last_command = cmd
        return cmd.action  # what was applied: a workspace-clamped delta is recorded as the smaller delta

    # ------------------------------------------------------------------ task

    def _task_success(self) -> bool:
        model, data = self._model, self._data
        block = data.qpos[self._block_qpos:self._block_qpos + 3]
        if self.task == "reach-block":
            return bool(np.linalg.norm(data.site_xpos[self._ee_site] - block) < REACH_TOLERANCE)
        if self.task == "place-block":  # resting inside the walls, below the rim (not held above it)
            inside = np.abs(block[:2] - model.body_pos[self._pot_body][:2]).max() < POT_INNER - 0.005
            return bool(inside and block[2] < POT_RIM)
        if self.task == "close-drawer":
            return bool(data.qpos[self._drawer_qpos] > -DRAWER_CLOSED)
        return bool(-data.qpos[self._button_qpos] > PRESS_DEPTH)

    def task_state(self) -> dict[str, np.ndarray | float | str]:
        """Privileged simulator state for scripted experts and tests (a policy never sees it): "target" is
        the block centre (reach-block, place-block), the top centre of the released button cap
        (push-button), or the centre of the drawer's front face (close-drawer)."""
        model, data = self._require()
        block = data.qpos[self._block_qpos:self._block_qpos + 3].copy()
        q = data.qpos[self._block_qpos + 3:self._block_qpos + 7]
        block_yaw = float(np.arctan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] ** 2 + q[3] ** 2)))
        button = model.body_pos[self._button_body].copy() + np.array([0.0, 0.0, CAP_TOP])
        depth = float(max(-data.qpos[self._button_qpos], 0.0))
        cabinet, cabinet_yaw = model.body_pos[self._cabinet_body].copy(), 2 * float(np.arctan2(*model.body_quat[self._cabinet_body][[3, 0]]))
        opening = float(-data.qpos[self._drawer_qpos])
        axis = np.array([np.cos(cabinet_yaw), np.sin(cabinet_yaw), 0.0])  # cabinet +x: away from the robot
        front = cabinet - axis * (DRAWER_FRONT + opening) + np.array([0.0, 0.0, 0.045])
        target = {"push-button": button, "close-drawer": front}.get(self.task, block)
        return {"task": self.task, "target": target, "block_pos": block, "block_yaw": block_yaw,
                "button_pos": button, "button_depth": depth, "pot_pos": model.body_pos[self._pot_body].copy(),
                "cabinet_pos": cabinet, "cabinet_yaw": cabinet_yaw, "drawer_opening": opening, "drawer_front": front,
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
