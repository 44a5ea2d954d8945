"""make_robot / make_camera: names, lazy imports, clear errors for backends that are not there."""

import sys

import pytest

from clamkit.errors import UserError
from clamkit.robot.fake import FakeCamera, FakeRobot
from clamkit.robot.factory import make_camera, make_robot
from clamkit.robot.sim_camera import SimCamera


def test_fake_robots_and_cameras():
    r = make_robot("fake", dim=3, max_steps=7)
    assert isinstance(r, FakeRobot) and r.action_spec.dim == 3 and r.max_steps == 7
    ee = make_robot("fake:ee")
    assert ee.action_spec.semantics == "ee_delta_xyz_rpy+gripper" and ee.action_spec.dim == 7
    assert make_camera(None, r) is None and make_camera("none", r) is None
    assert isinstance(make_camera("fake", r, 40, 30), FakeCamera) and make_camera("fake", r, 40, 30).spec.shape == (30, 40, 3)
    assert isinstance(make_camera("sim", r, 16, 16), SimCamera)


def test_metaworld_robot_is_built_lazily():
    pytest.importorskip("metaworld")
    r = make_robot("metaworld:reach-v3")
    assert r.name == "metaworld:reach-v3" and not r.is_connected


@pytest.mark.parametrize("spec, match", [
    ("nonsense", "unknown robot"), ("metaworld", "needs a task"), ("dmc", "DOMAIN-TASK"), ("fake:what", "unknown fake"),
    ("widowx:push-button", "widowx-sim:push-button"),
])
def test_bad_robot_names(spec, match):
    with pytest.raises(UserError, match=match):
        make_robot(spec)


@pytest.mark.parametrize("spec, module", [("widowx", "widowx"), ("widowx-sim:push-button", "widowx_sim"), ("dmc:reacher-easy", "dmc")])
def test_missing_backend_module_is_a_clear_user_error(monkeypatch, spec, module):
    monkeypatch.setitem(sys.modules, f"clamkit.robot.{module}", None)  # as if the module had not landed
    with pytest.raises(UserError, match=f"needs clamkit.robot.{module}"):
        make_robot(spec)


@pytest.mark.parametrize("spec", ["realsense", "realsense:123456", "recording:/tmp/x.bag"])
def test_missing_camera_module_is_a_clear_user_error(monkeypatch, spec):
    monkeypatch.setitem(sys.modules, "clamkit.robot.realsense", None)
    with pytest.raises(UserError, match="needs clamkit.robot.realsense"):
        make_camera(spec, None)


def test_bad_camera_names():
    with pytest.raises(UserError, match="unknown camera"):
        make_camera("webcam", None)
    with pytest.raises(UserError, match="needs a file"):
        make_camera("recording", None)
    with pytest.raises(UserError, match="pass --robot"):
        make_camera("sim", None)
