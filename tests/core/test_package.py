"""Packaging: every subpackage installs and imports. The never-arrows are checked statically in test_arrows.py."""

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("mod", ["clamkit", "clamkit.importers", "clamkit.trainer", "clamkit.export", "clamkit.runtime",
                                 "clamkit.robot", "clamkit.robot.emulate", "clamkit.record", "clamkit.view", "clamkit.pipeline"])
def test_subpackages_import(mod):
    __import__(mod)


def test_console_scripts_start_without_torch():
    """clam-train and clam-export start in clamkit.pipeline, which must not load torch before a command needs it:
    `clam-export BUNDLE --trt` runs on the robot computer. Likewise clam-record, clam-run and clam-eval."""
    code = ("import clamkit.pipeline, clamkit.record.cli, clamkit.runtime.cli, sys, json; "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "torch" not in mods and "onnx" not in mods


def _console_scripts() -> dict[str, str]:
    from importlib.metadata import distribution

    return {e.name: e.value for e in distribution("clamkit").entry_points if e.group == "console_scripts"}


@pytest.mark.parametrize("script", sorted(_console_scripts()))
def test_every_command_takes_dash_h(script):
    """One click context for every clam-* command: -h is --help (clam-train refused it once)."""
    import importlib

    from click.testing import CliRunner

    module, attr = _console_scripts()[script].split(":")
    res = CliRunner().invoke(getattr(importlib.import_module(module), attr), ["-h"])
    assert res.exit_code == 0 and "Usage:" in res.output and "--help" in res.output, res.output
