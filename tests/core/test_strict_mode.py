"""CLAMKIT_STRICT=1 turns the skip of a missing `.[all]` dependency into a failure; other skips stay skips."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

PROBE = '''
import sys
import pytest

sys.modules["onnxruntime"] = None  # as if onnxruntime (a dependency of clamkit[all]) were not installed


def test_needs_onnxruntime():
    pytest.importorskip("onnxruntime")


def test_needs_tensorrt():
    sys.modules["tensorrt"] = None  # not in .[all]: GPU machines only
    pytest.importorskip("tensorrt")
'''


def _run(tmp_path, strict: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CLAMKIT_STRICT"} | {"PYTHONPATH": str(TESTS)}
    if strict:
        env["CLAMKIT_STRICT"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "strict_mode", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)


def test_without_strict_a_missing_dependency_skips(tmp_path):
    p = _run(tmp_path, strict=False)
    assert p.returncode == 0 and "2 skipped" in p.stdout, p.stdout + p.stderr


def test_strict_fails_a_missing_all_dependency_but_keeps_the_gpu_skip(tmp_path):
    p = _run(tmp_path, strict=True)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 failed" in p.stdout and "1 skipped" in p.stdout
    assert "CLAMKIT_STRICT=1: 'onnxruntime' is a dependency of clamkit[all]" in p.stdout
