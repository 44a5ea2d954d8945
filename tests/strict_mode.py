"""Strict mode: with CLAMKIT_STRICT=1 (set by .ci/run) a missing dependency of `clamkit[all]` FAILS the
test that needs it instead of skipping it, so a CI machine that lost one (pyrealsense2 without libusb,
onnxruntime, ...) cannot pass by skipping. Optional packages outside `.[all]` (tensorrt, cuda-python,
Interbotix, lerobot) and hardware skips (no GPU, no camera, no arm) stay skips.

It wraps pytest.importorskip: for a module of `.[all]` it imports it outright and turns an ImportError
into a failure naming the module. Installed by tests/conftest.py; `-p strict_mode` also loads it.
"""

from __future__ import annotations

import importlib
import os

import pytest

# Import names of every package the `all` extra installs (pyproject.toml: runtime, train, sim, realsense,
# import, viz, dev). Not here on purpose: tensorrt, cuda (extra `trt`, GPU machines only), interbotix_xs_modules,
# rclpy (ROS), lerobot (a comparison, not a dependency).
ALL_EXTRAS = {"onnxruntime", "torch", "onnx", "onnxscript", "tensorboard", "mujoco", "dm_control", "metaworld",
              "packaging", "pyrealsense2", "h5py", "pyarrow", "av", "tfrecord", "crc32c", "rerun", "PIL", "pytest",
              "pytest_timeout", "hypothesis", "matplotlib", "pandas", "numpy", "click", "yaml", "tqdm"}


def enabled() -> bool:
    return os.environ.get("CLAMKIT_STRICT", "") not in ("", "0")


def install() -> None:
    """Replace pytest.importorskip by the strict version (once)."""
    if getattr(pytest.importorskip, "clamkit_strict", False):
        return
    lenient = pytest.importorskip

    def importorskip(modname: str, minversion: str | None = None, reason: str | None = None, **kw):
        if modname.split(".")[0] in ALL_EXTRAS:
            try:
                importlib.import_module(modname)
            except ImportError as e:
                pytest.fail(f"CLAMKIT_STRICT=1: '{modname}' is a dependency of clamkit[all] and cannot be imported "
                            f"({e}); install it (pip install -e '.[all]'; pyrealsense2 also needs libusb-1.0-0)",
                            pytrace=False)
        return lenient(modname, minversion=minversion, reason=reason, **kw)

    importorskip.clamkit_strict = True
    pytest.importorskip = importorskip


def pytest_configure(config):  # when loaded with -p strict_mode
    if enabled():
        install()
