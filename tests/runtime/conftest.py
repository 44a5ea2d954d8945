"""Tiny bundles built without torch: an ONNX graph from onnx.helper + clam.json via BundleMeta.

    state   state (B, 2d) -> MatMul W -> Tanh -> action (B, d)      steers the FakeRobot to its goal
    ee      state (B, 6)  -> MatMul W -> Tanh -> action (B, 7)      FakeRobot("fake:ee"), WidowX-like semantics
    image   image uint8 (B, H, W, 3) -> Cast -> ReduceMean(H, W) -> /255 -> MatMul -> Tanh -> action (B, d)
    conv    image uint8 (B, H, W, 3) -> 3x3 Conv -> Relu -> mean -> MatMul -> Tanh: uses ORT's intra-op pool
    reach   MetaWorld state (B, 39) -> a[:3] = tanh(k (goal - hand)), a[3] = 0: a real reach-v3 controller
    nan     like state, times NaN
    const   state (B, n) -> action = a constant (B, d), any semantics and bounds
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from clamkit.bundle import ONNX_NAME, BundleMeta, sha256_file, write_meta  # noqa: E402
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec  # noqa: E402

_DT = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8}


def _write(out: Path, nodes, inits, inp: str, in_shape, in_dtype: str, act_dim: int, semantics: str,
           low=-1.0, high=1.0, fps=50.0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info(inp, _DT[in_dtype], ["B", *in_shape])
    y = helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", act_dim])
    graph = helper.make_graph(nodes, "policy", [x], [y], initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="clamkit-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out / ONNX_NAME)
    meta = BundleMeta(observation=ObservationSpec({inp: ArraySpec(tuple(in_shape), in_dtype)}),
                      action=ActionSpec(act_dim, (low,) * act_dim, (high,) * act_dim, semantics),
                      fps=fps, la_dim=8, inputs=[inp], onnx_sha256=sha256_file(out / ONNX_NAME), valid=True,
                      parity={"max_abs_error": 0.0, "cosine": 1.0, "exporter": "tests/onnx.helper"})
    write_meta(out, meta)
    return out


def state_bundle(out: Path, dim: int = 2, gain: float = 5.0, semantics: str = "fake:delta_pos", nan: bool = False,
                 fps: float = 50.0) -> Path:
    """action = tanh(gain * (goal - pos)) for FakeRobot's state [pos, goal]."""
    W = np.concatenate([-np.eye(dim), np.eye(dim)]).astype(np.float32) * gain  # (2d, d)
    nodes = [helper.make_node("MatMul", ["state", "W"], ["h"]), helper.make_node("Tanh", ["h"], ["t"])]
    inits = {"W": W}
    if nan:
        nodes.append(helper.make_node("Mul", ["t", "nan"], ["action"]))
        inits["nan"] = np.array([np.nan], np.float32)
    else:
        nodes[-1] = helper.make_node("Tanh", ["h"], ["action"])
    return _write(out, nodes, inits, "state", (2 * dim,), "float32", dim, semantics, fps=fps)


def ee_bundle(out: Path, gain: float = 5.0) -> Path:
    """7-D ee_delta_xyz_rpy+gripper actions for FakeRobot('fake:ee'): Δxyz = tanh(gain (goal - pos)), rest 0."""
    W = np.zeros((6, 7), np.float32)
    W[:3, :3], W[3:, :3] = -gain * np.eye(3), gain * np.eye(3)
    nodes = [helper.make_node("MatMul", ["state", "W"], ["h"]), helper.make_node("Tanh", ["h"], ["action"])]
    return _write(out, nodes, {"W": W}, "state", (6,), "float32", 7, "ee_delta_xyz_rpy+gripper", fps=5.0)


def image_bundle(out: Path, hw=(32, 32), dim: int = 2, semantics: str = "fake:delta_pos") -> Path:
    """Mean colour of the frame -> a small action."""
    W = (np.arange(3 * dim, dtype=np.float32).reshape(3, dim) - dim) * 0.1  # (3, d)
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),  # (B, H, W, 3)
             helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),  # (B, 3)
             helper.make_node("Mul", ["m", "scale"], ["n"]),
             helper.make_node("MatMul", ["n", "W"], ["h"]),  # (B, d)
             helper.make_node("Tanh", ["h"], ["action"])]
    return _write(out, nodes, {"W": W, "scale": np.array([1 / 255], np.float32)}, "image", (*hw, 3), "uint8", dim,
                  semantics, fps=10.0)


def conv_bundle(out: Path, hw=(480, 640), dim: int = 2, semantics: str = "fake:delta_pos") -> Path:
    """A 3x3 conv over the frame (what makes onnxruntime use its intra-op thread pool), pooled -> an action."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),  # (B, H, W, 3)
             helper.make_node("Transpose", ["f"], ["x"], perm=[0, 3, 1, 2]),  # (B, 3, H, W)
             helper.make_node("Conv", ["x", "K"], ["c"], kernel_shape=[3, 3], strides=[2, 2]),  # (B, 8, H/2, W/2)
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=0),  # (B, 8)
             helper.make_node("MatMul", ["m", "W"], ["h"]),
             helper.make_node("Tanh", ["h"], ["action"])]
    inits = {"K": rng.normal(0, 1e-3, (8, 3, 3, 3)).astype(np.float32), "W": rng.normal(0, 0.1, (8, dim)).astype(np.float32)}
    return _write(out, nodes, inits, "image", (*hw, 3), "uint8", dim, semantics, fps=30.0)


def reach_bundle(out: Path, gain: float = 10.0) -> Path:
    """A hand-written MetaWorld reach-v3 controller: a[:3] = tanh(gain (goal - hand)), gripper 0."""
    W = np.zeros((39, 4), np.float32)
    W[0:3, 0:3], W[36:39, 0:3] = -gain * np.eye(3), gain * np.eye(3)
    nodes = [helper.make_node("MatMul", ["state", "W"], ["h"]), helper.make_node("Tanh", ["h"], ["action"])]
    return _write(out, nodes, {"W": W}, "state", (39,), "float32", 4, "metaworld:xyz+gripper", fps=80.0)


def const_bundle(out: Path, action=(0.05, 0, 0.05, 0, 0, 0, 1), state_dim: int = 7,
                 semantics: str = "ee_delta_xyz_rpy+gripper", low=-1.0, high=1.0, fps: float = 5.0) -> Path:
    """Always the same action (0 * state + bias), e.g. one that drives a WidowX out of its workspace."""
    bias = np.asarray(action, np.float32)
    W = np.zeros((state_dim, bias.size), np.float32)
    nodes = [helper.make_node("MatMul", ["state", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["action"])]
    return _write(out, nodes, {"W": W, "b": bias}, "state", (state_dim,), "float32", bias.size, semantics,
                  low=low, high=high, fps=fps)


@pytest.fixture
def bundles(tmp_path):
    """bundles("state" | "ee" | "image" | "reach" | "nan" | "const", **kw) -> a bundle directory under tmp_path."""
    makers = {"state": state_bundle, "ee": ee_bundle, "image": image_bundle, "conv": conv_bundle, "reach": reach_bundle,
              "const": const_bundle,
              "nan": lambda out, **kw: state_bundle(out, nan=True, **kw)}
    count = iter(range(1000))

    def make(kind: str, **kw) -> Path:
        return makers[kind](tmp_path / f"bundle-{kind}-{next(count)}", **kw)

    return make
