"""Fixtures shared by every test package."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import strict_mode  # tests/strict_mode.py

# Headless rendering must be chosen before mujoco is first imported (DESIGN §2).
os.environ.setdefault("MUJOCO_GL", "egl")

if strict_mode.enabled():  # CLAMKIT_STRICT=1 (.ci/run): a missing dependency of .[all] fails, not skips
    strict_mode.install()


@pytest.fixture
def fake_trt(monkeypatch):
    """The fake `tensorrt` + `cuda.bindings.runtime` (tests/fake_trt.py) in sys.modules; returns the tensorrt
    module (its `.cudart` is the CUDA runtime). Its engines run the ONNX graph they were built from."""
    import fake_trt as fake  # tests/fake_trt.py

    trt = fake.FakeTRT(cudart=fake.make_fake_cudart())
    for name, mod in fake.install(trt, {}).items():
        monkeypatch.setitem(sys.modules, name, mod)
    return trt


@pytest.fixture(scope="session")
def benchmark_module():
    """Load a script of benchmarks/ as a module: benchmark_module("learning") -> benchmarks/learning.py (the
    scripts are not a package; each import runs the file afresh, so module-level patches do not leak)."""
    root = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", root / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
