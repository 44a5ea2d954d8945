"""Builders for the reliability tests: a tiny dataset, tiny ONNX bundles (onnx.helper, no torch), and
the tally of bad inputs tried (printed at the end of the run: "reliability: tried N bad inputs ...")."""

from __future__ import annotations

import os
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import synthetic  # tests/synthetic.py

os.environ.setdefault("MUJOCO_GL", "egl")

from clamkit.dataset import DatasetWriter  # noqa: E402
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec  # noqa: E402

OBS = ObservationSpec({"state": ArraySpec((3,), "float32"), "image": ArraySpec((4, 4, 3), "uint8")})
ACT = ActionSpec(dim=2, low=(-1, -1), high=(1, 1), semantics="test:delta")

TALLY: Counter = Counter()  # outcome -> count, over every fuzz test of the session


def write_dataset(root: Path) -> Path:
    """3 episodes: two labelled (T=6, 5), one unlabelled (T=4); state float32 (3,), image uint8 (4, 4, 3)."""
    rng = np.random.default_rng(0)
    w = DatasetWriter(root, observation=OBS, action=ACT, fps=10, robot="fake", task="t")
    for T, labelled in ((6, True), (5, True), (4, False)):
        obs = {"state": rng.normal(size=(T, 3)).astype(np.float32), "image": rng.integers(0, 256, (T, 4, 4, 3), np.uint8)}
        w.add_episode(obs, rng.uniform(-1, 1, (T - 1, 2)).astype(np.float32) if labelled else None, success=bool(T % 2))
    return root


def write_linear(root: Path, kind: str, episodes: int, T: int = 40, labelled: bool = True) -> str:
    """The shared linear system (tests/synthetic.py), 40-step episodes."""
    return synthetic.write_linear(root, kind, episodes, T=T, labelled=labelled)


def onnx_graph(path: Path, *, in_name="state", in_dim=4, in_dtype="float32", out_name="action", out_dim=2) -> Path:
    """action = tanh(x @ W), W (in_dim, out_dim); a uint8 input is cast to float first."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    dt = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8}[in_dtype]
    nodes = []
    x = in_name
    if in_dtype != "float32":
        nodes.append(helper.make_node("Cast", [in_name], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    nodes += [helper.make_node("MatMul", [x, "W"], ["h"]), helper.make_node("Tanh", ["h"], [out_name])]
    W = (np.arange(in_dim * out_dim, dtype=np.float32).reshape(in_dim, out_dim) - in_dim) * 0.1
    graph = helper.make_graph(nodes, "policy", [helper.make_tensor_value_info(in_name, dt, ["B", in_dim])],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["B", out_dim])],
                              initializer=[numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="clamkit-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def write_bundle(out: Path) -> Path:
    """A valid bundle: state (4,) float32 -> action (2,), 'test:delta' semantics, 10 Hz."""
    from clamkit.bundle import ONNX_NAME, BundleMeta, sha256_file, write_meta

    out.mkdir(parents=True, exist_ok=True)
    onnx_graph(out / ONNX_NAME)
    write_meta(out, BundleMeta(observation=ObservationSpec({"state": ArraySpec((4,), "float32")}), action=ACT, fps=10.0,
                               la_dim=8, inputs=["state"], onnx_sha256=sha256_file(out / ONNX_NAME), valid=True,
                               parity={"max_abs_error": 0.0, "cosine": 1.0}))
    return out


@pytest.fixture(scope="session")
def rel():
    """The builders above, for test modules (a conftest is not importable under --import-mode=importlib)."""
    return types.SimpleNamespace(write_dataset=write_dataset, write_bundle=write_bundle, onnx_graph=onnx_graph,
                                 write_linear=write_linear,
                                 OBS=OBS, ACT=ACT, tally=TALLY)


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        total = sum(TALLY.values())
        parts = ", ".join(f"{n} {k}" for k, n in sorted(TALLY.items()))
        terminalreporter.write_line(f"reliability: tried {total} bad inputs ({parts})")


@pytest.fixture(scope="session")
def linear(tmp_path_factory):
    """(unlabelled expert dir with hidden actions, labelled play dir) for short training runs."""
    d = tmp_path_factory.mktemp("linear")
    return write_linear(d / "expert", "expert", 12), write_linear(d / "play", "play", 8)
