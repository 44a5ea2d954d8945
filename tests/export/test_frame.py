"""`clam-export --frame`: the graph takes the camera's raw frame and crops + resizes inside, reproducing the
numpy camera path (robot/realsense.py) that training frames went through; the runtime then feeds frames as
captured."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from clamkit.bundle import read_meta
from clamkit.pipeline import export_main as main
from clamkit.export.frame import FramePreprocess, area_weights, numpy_camera_path, raw_frames
from clamkit.export.parity import PARITY_NAME, OnnxRunner
from clamkit.trainer import deploy



@pytest.mark.parametrize("frame_hw, out_hw, exact", [((480, 640), (64, 64), True), ((480, 640), (84, 84), False),
                                                      ((480, 640), (48, 64), True), ((37, 53), (16, 16), True)])
def test_frame_preprocess_matches_the_numpy_camera_path(frame_hw, out_hw, exact):
    frames = np.random.default_rng(0).integers(0, 256, (3, *frame_hw, 3), dtype=np.uint8)
    ref = numpy_camera_path(frames, out_hw).astype(np.float32)  # centre crop + area resize, rounded
    got = FramePreprocess(frame_hw, out_hw)(torch.from_numpy(frames)).numpy()
    assert got.shape == ref.shape and np.array_equal(got, np.round(got))
    diff = np.abs(got - ref)
    if exact:  # 480 -> 64 is 15/2: an area mean is never exactly k + 0.5, so no ties either
        assert diff.max() == 0
    else:  # 480 -> 84 is 40/7: ties exist and numpy's float32 sums may round them down
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_area_weights_are_an_integer_area_partition():
    W, p, q = area_weights(480, 64)
    assert (p, q) == (15, 2) and W.shape == (2, 15) and (W.sum(1) == 15).all() and (W.sum(0) == 2).all()


def test_raw_frames_crop_back_to_the_samples():
    samples = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    frames = raw_frames(samples, (120, 160))  # centre crop 120x120 at x 20, 7.5 raw pixels per sample pixel
    assert frames.shape == (2, 120, 160, 3)
    assert frames[0, 0, 0, 0] == 0 and frames[0, 0, -1, 0] == 255  # the margins hold the ramp
    back = numpy_camera_path(frames, (16, 16)).astype(int)
    assert np.abs(back - samples).mean() < 20  # nearest upscaling then area downsizing: close to the original


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    """A tiny real DeployPolicy at 32x32 frames whose model runs at 24x24 (so the graph keeps its bilinear
    resize after the in-graph crop + area resize), saved as a run the exporter loads."""
    torch.manual_seed(0)
    arch = {"key": "image", "in_shape": [32, 32, 3], "image_size": 24, "net": {"hidden": [32], "channels": [8, 16]},
            "policy_out": 8, "squash": False, "action_dim": 7, "decoder": {"la_dim": 8, "hidden": [32]}}
    policy = deploy.DeployPolicy(arch)
    with torch.no_grad():
        policy.low.fill_(-0.05)
        policy.high.fill_(0.05)
    run = tmp_path_factory.mktemp("run")
    samples = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    meta = {"observation": {"image": {"shape": [32, 32, 3], "dtype": "uint8"}},
            "action": {"dim": 7, "low": [-0.05] * 7, "high": [0.05] * 7, "semantics": "ee_delta_xyz_rpy+gripper"},
            "fps": 5.0, "la_dim": 8, "algo": "clam", "provenance": {}}
    deploy.save_policy(run / "policy.pt", policy, meta, {"image": samples})
    return run


def test_export_with_frame_takes_raw_frames_and_checks_parity(pixel_run, tmp_path):
    out = tmp_path / "bundle"
    res = CliRunner().invoke(main, [str(pixel_run), "--out", str(out), "--frame", "160x120", "--batch-max", "4"])
    assert res.exit_code == 0, res.output
    assert "frame     160x120 raw" in res.output
    meta = read_meta(out)
    assert meta.observation.keys["image"].shape == (120, 160, 3) and meta.observation.keys["image"].dtype == "uint8"
    f = meta.parity["frame"]
    assert f["passed"] and f["pixels_max_abs_lsb"] == 0 and f["action_max_abs_error"] <= 1e-4
    assert meta.camera["frame"]["crop_yx_hw"] == [0, 20, 120, 120] and meta.camera["frame"]["image_hw"] == [32, 32]
    # TensorRT takes a uint8 input only straight into a Cast
    g = onnx.load(str(out / "policy.onnx")).graph
    assert [n.op_type for n in g.node if "image" in n.input] == ["Cast"]
    # The graph on a raw frame = the trained policy on what the numpy camera path makes of that frame.
    policy, _ = deploy.load_policy(pixel_run)
    frames = np.random.default_rng(5).integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    with torch.no_grad():
        want = policy(torch.from_numpy(numpy_camera_path(frames, (32, 32)))).numpy()
    got = OnnxRunner(out / "policy.onnx")({"image": frames})
    np.testing.assert_allclose(got, want, atol=1e-5)
    with np.load(out / PARITY_NAME) as z:  # what an engine built later on the robot is checked against
        assert z["input.image"].shape[1:] == (120, 160, 3)


def test_frame_needs_an_image_policy_and_a_frame_no_smaller_than_training(pixel_run, tmp_path):
    res = CliRunner().invoke(main, [str(pixel_run), "--out", str(tmp_path / "b"), "--frame", "24x24"])
    assert res.exit_code == 2 and "only downsizes" in res.output
    res = CliRunner().invoke(main, [str(pixel_run), "--out", str(tmp_path / "b"), "--frame", "640by480"])
    assert res.exit_code == 2 and "expected WIDTHxHEIGHT" in res.output
