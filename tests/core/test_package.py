"""Packaging and the never-arrows of DESIGN §1."""

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("mod", ["clamkit", "clamkit.importers", "clamkit.trainer", "clamkit.export", "clamkit.runtime",
                                 "clamkit.robot", "clamkit.robot.emulate", "clamkit.record", "clamkit.view"])
def test_subpackages_import(mod):
    __import__(mod)


def _modules_after_import(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_core_runtime_and_robot_never_import_torch():
    mods = _modules_after_import("import clamkit, clamkit.dataset, clamkit.bundle, clamkit.runtime, clamkit.robot, "
                                 "clamkit.record.cli, clamkit.record.episodes, clamkit.record.metaworld, clamkit.record.widowx_sim, clamkit.robot.emulate, "
                                 "clamkit.robot.emulate.world, clamkit.robot.emulate.interbotix, clamkit.robot.emulate.realsense, "
                                 "clamkit.robot.widowx_sim, clamkit.robot.realsense_recording, clamkit.runtime.loop")
    assert "torch" not in mods
    assert not {m for m in mods if m.startswith(("clamkit.trainer", "clamkit.export"))}


def test_core_imports_none_of_the_four():
    mods = _modules_after_import("import clamkit, clamkit.dataset, clamkit.bundle, clamkit.specs, clamkit.cli, "
                                 "clamkit.importers.cli, clamkit.importers.videos, clamkit.importers.lerobot, "
                                 "clamkit.importers.hdf5, clamkit.importers.rlds")
    assert not {"torch", "av", "pyarrow", "h5py", "tfrecord"} & mods  # readers load inside the function that needs them
    assert not {m for m in mods if m.startswith(("clamkit.trainer", "clamkit.export", "clamkit.runtime", "clamkit.robot"))}


def test_viewer_imports_torch_only_to_read_a_run():
    mods = _modules_after_import("import clamkit.view.cli, clamkit.view.scene, clamkit.view.render")
    assert "torch" not in mods and not {m for m in mods if m.startswith("clamkit.trainer")}
