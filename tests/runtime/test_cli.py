"""Smoke tests of clam-run / clam-eval on tiny budgets, the never-arrows, and Ctrl-C in a real process."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from clamkit.dataset import Dataset
from clamkit.runtime.cli import eval_main, run_main

ENV = os.environ | {"MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}


def _err_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_help_has_examples():
    for cmd in (run_main, eval_main):
        out = CliRunner().invoke(cmd, ["--help"]).output
        assert "Examples:" in out and "--seed" in out


def test_clam_run_threads_reach_onnxruntime(bundles, monkeypatch):
    from clamkit.runtime import backends

    seen = []
    real_init = backends.OrtBackend.__init__

    def spy(self, bundle, **kw):
        real_init(self, bundle, **kw)
        seen.append(self.session.get_session_options().intra_op_num_threads)

    monkeypatch.setattr(backends.OrtBackend, "__init__", spy)
    run = [str(bundles("state")), "--robot", "fake", "--hz", "0", "--steps", "3"]
    for extra in (["--threads", "1"], []):
        r = CliRunner().invoke(run_main, run + extra)
        assert r.exit_code == 0, r.output
    assert seen == [1, backends.default_threads()]  # as asked; then the default
    r = CliRunner().invoke(run_main, [run[0], "--robot", "fake", "--backend", "trt", "--threads", "1"])
    assert r.exit_code == 2 and "--threads" in r.output


@pytest.mark.parametrize("cores, threads", [(None, 1), (1, 1), (2, 1), (3, 2), (16, 2)])
def test_default_ort_threads_leave_a_core_free(cores, threads, monkeypatch):
    from clamkit.runtime import backends

    monkeypatch.setattr(backends.os, "cpu_count", lambda: cores)
    assert backends.default_threads() == threads


def test_clam_run_fake_robot(bundles, tmp_path):
    b = bundles("state")
    r = CliRunner().invoke(run_main, [str(b), "--robot", "fake", "--hz", "0", "--episodes", "2", "--robot-opt", "max_steps=20",
                                      "--record", str(tmp_path / "rec"), "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "success     1.00 over 2 episode(s)" in r.stdout and "inference" in r.stdout and "missed deadlines 0" in r.stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["ticks"] == 40 and rep["bundle"] == str(b) and rep["latency_ms"]["tick"]["p99"] > 0
    ds = Dataset(tmp_path / "rec")
    assert len(ds) == 2 and ds.episode(1)["action"].shape == (20, 2) and ds.meta["robot"] == "fake"


def test_clam_run_dry_run_sends_nothing(bundles):
    # fail_at=0: any send_action would raise, turning exit 0 into a fault (exit 1).
    r = CliRunner().invoke(run_main, [str(bundles("state")), "--robot", "fake", "--hz", "0", "--steps", "5", "--dry-run",
                                      "--robot-opt", "fail_at=0"])
    assert r.exit_code == 0, r.output
    assert "ticks       5" in r.stdout


@pytest.mark.parametrize("args, match", [
    (["--robot", "fake", "--robot-opt", "state=false", "--camera", "fake"], "needs observation 'state'"),
    (["--robot", "fake", "--robot-opt", "action_dim=3"], "2-D actions, robot takes 3-D"),
])
def test_clam_run_spec_mismatch_exits_2_with_one_line(bundles, args, match):
    r = CliRunner().invoke(run_main, [str(bundles("state")), "--hz", "0", "--steps", "3", "--robot-opt", "fail_at=0", *args])
    assert r.exit_code == 2, r.output
    assert len(_err_lines(r)) == 1 and match in _err_lines(r)[0] and "Traceback" not in r.output


def test_clam_run_fault_exits_1_with_one_line(bundles, tmp_path):
    r = CliRunner().invoke(run_main, [str(bundles("state")), "--robot", "fake", "--hz", "0", "--robot-opt", "fail_at=3",
                                      "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 1
    assert len(_err_lines(r)) == 1 and "FakeFault" in _err_lines(r)[0]
    assert json.loads((tmp_path / "r.json").read_text())["stop_reason"].startswith("fault")


def test_clam_run_fault_with_debug_shows_the_traceback(bundles, tmp_path):
    """Regression: --debug did not re-raise a fault (the check read the root logger, which stays at WARNING)."""
    r = CliRunner().invoke(run_main, [str(bundles("state")), "--robot", "fake", "--hz", "0", "--robot-opt", "fail_at=3",
                                      "--debug"])
    assert r.exit_code == 1 and type(r.exception).__name__ == "FakeFault"  # raised through, not one line + exit


def test_clam_run_bad_input_is_one_line(bundles, tmp_path):
    for args in (["--robot", "nonsense"], ["--robot", "fake", "--robot-opt", "novalue"]):
        r = CliRunner().invoke(run_main, [str(bundles("state")), *args])
        assert r.exit_code == 2 and len(_err_lines(r)) == 1, r.output
    r = CliRunner().invoke(run_main, [str(tmp_path / "missing"), "--robot", "fake"])
    assert r.exit_code == 2 and "no such bundle" in r.stderr


def test_clam_run_backend_trt_without_tensorrt_exits_2(bundles):
    """A real process, so the one line is all there is on stderr."""
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    p = subprocess.run([sys.executable, "-c", "from clamkit.runtime.cli import run_main; run_main()", str(bundles("state")),
                        "--robot", "fake", "--backend", "trt"], capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tensorrt is not installed"), p.stderr


def test_clam_eval_metaworld_reach(bundles, tmp_path):
    pytest.importorskip("metaworld")
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(eval_main, [str(bundles("reach")), "--env", "metaworld:reach-v3", "--episodes", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["env"] == "metaworld:reach-v3" and len(res["episodes"]) == 2 and res["hz"] == 0
    assert res["success_rate"] == 1.0  # the hand-written reach controller in the bundle succeeds
    for k in ("p50", "p99", "max"):
        assert res["latency_ms"]["infer"][k] > 0 and res["latency_ms"]["tick"][k] > 0
    assert "success     1.00 over 2 episode(s)" in r.stdout


def test_clam_run_continue_after_fault_and_clam_eval_count_episode_faults_as_failures(bundles, tmp_path):
    opts = ["--robot-opt", "fail_at=3", "--robot-opt", "episode_fault=true", "--robot-opt", "max_steps=10"]
    r = CliRunner().invoke(run_main, [str(bundles("state")), "--robot", "fake", "--hz", "0", "--episodes", "2",
                                      "--continue-after-fault", *opts])
    assert r.exit_code == 0, r.output
    assert "success     0.00 over 2 episode(s)" in r.stdout and "faults      2 episode(s) ended by a fault" in r.stdout
    r = CliRunner().invoke(run_main, [str(bundles("state")), "--robot", "fake", "--hz", "0", "--episodes", "2", *opts])
    assert r.exit_code == 1  # by default the fault stops the run
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(eval_main, [str(bundles("state")), "--env", "fake", "--episodes", "2", "--json", str(out), *opts])
    assert r.exit_code == 0, r.output
    assert [e["fault"].startswith("FakeEpisodeFault") for e in json.loads(out.read_text())["episodes"]] == [True, True]


def test_clam_eval_image_bundle_uses_the_sim_camera(bundles, tmp_path):
    r = CliRunner().invoke(eval_main, [str(bundles("image", hw=(16, 16))), "--env", "fake", "--episodes", "2",
                                       "--robot-opt", "max_steps=5", "--video", str(tmp_path / "vid")])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "vid").glob("*.gif"))) == 2


def test_runtime_never_imports_torch_trainer_or_export(bundles):
    code = f"""
import sys
import clamkit.runtime, clamkit.robot, clamkit.runtime.cli, clamkit.robot.factory, clamkit.robot.fake
from clamkit.runtime import LoopOptions, make_backend, run_loop
from clamkit.robot.factory import make_robot
with make_backend({str(bundles("state"))!r}) as be:
    run_loop(make_robot("fake", max_steps=3), be, None, LoopOptions(hz=0))
bad = [m for m in ("torch", "clamkit.trainer", "clamkit.export") if m in sys.modules]
print("BAD", bad)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "BAD []" in p.stdout


def test_sigint_stops_clam_run_safely(bundles, tmp_path):
    """Ctrl-C on a real clam-run process: safe pose, recording and report written, exit 130."""
    rec, rep = tmp_path / "rec", tmp_path / "r.json"
    p = subprocess.Popen([sys.executable, "-c", "from clamkit.runtime.cli import run_main; run_main()", str(bundles("state")),
                          "--robot", "fake", "--robot-opt", "max_steps=100000", "--hz", "50", "--record", str(rec),
                          "--report", str(rep)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        t0 = time.monotonic()
        for line in p.stderr:  # wait until the loop runs
            if "running ort" in line or time.monotonic() - t0 > 60:
                break
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "go_safe" in err and "stopped: interrupted (SIGINT)" in out
    report = json.loads(rep.read_text())
    assert report["stop_reason"] == "interrupted (SIGINT)" and report["ticks"] >= 5
    ds = Dataset(rec)
    assert len(ds) == 1 and ds.episode(0)["action"].shape[0] == report["ticks"]
