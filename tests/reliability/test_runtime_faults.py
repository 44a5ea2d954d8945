"""Runtime faults end the same way: nothing more is sent, the robot goes to its safe pose, the partial
episode is recorded, the report is written, and the fault is re-raised (clam-run: exit 1, one line).

Already covered in tests/runtime: send_action raising (test_loop), a stale camera (test_safety), NaN
actions held for a few ticks (test_safety). Here: get_observation raising, a camera that stops
delivering, a NaN streak, an inference timeout and a tick overrun, all through run_loop."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from clamkit.dataset import Dataset
from clamkit.robot.fake import FakeCamera, FakeFault, FakeRobot
from clamkit.runtime.backends import make_backend
from clamkit.runtime.loop import LoopOptions, run_loop
from clamkit.runtime.safety import InferenceTimeout, NonFiniteActions, TickOverrun
from clamkit.runtime.subscribers import Recorder

pytest.importorskip("onnxruntime")


class Wrapped:
    """A backend that misbehaves on purpose once `at` actions reached the robot: 'nan' returns NaN,
    'sleep' sleeps `delay` s (counted on the robot, so a warm-up inference before the first tick does not count)."""

    def __init__(self, inner, how: str, at: int, delay: float = 0.0, robot=None):
        self.inner, self.how, self.at, self.delay, self.robot = inner, how, at, delay, robot
        self.meta, self.name = inner.meta, f"wrapped-{how}"

    def infer(self, obs):
        a = self.inner.infer(obs)
        if self.robot.connect_calls and len(self.robot.sent) >= self.at:
            if self.how == "nan":
                return np.full_like(a, np.nan)
            time.sleep(self.delay)
        return a


SCENARIOS = {
    # name: (robot kwargs, camera, backend wrapper (how, at, delay), safety, hz, fault type, ticks sent)
    "robot read fails": (dict(fail_at=4, fail_in="get_observation"), None, None, {}, 0, FakeFault, 4),
    "camera stops delivering": ({}, dict(fail_after=3), None, {}, 0, FakeFault, 3),
    "NaN streak": ({}, None, ("nan", 2, 0.0), {"max_nonfinite_streak": 3}, 0, NonFiniteActions, 5),
    "inference timeout": ({}, None, ("sleep", 3, 0.3), {"infer_timeout": 0.1}, 0, InferenceTimeout, 3),
    "tick overrun": ({}, None, ("sleep", 3, 0.3), {"max_overrun": 0.1}, 50, TickOverrun, 4),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_fault_goes_safe_records_and_reports(name, rel, tmp_path):
    robot_kw, cam_kw, wrap, safety, hz, fault, sent = SCENARIOS[name]
    robot = FakeRobot(dim=2, semantics="test:delta", max_steps=1000, **robot_kw)
    camera = FakeCamera(8, 8, **cam_kw) if cam_kw is not None else None
    with make_backend(rel.write_bundle(tmp_path / "b")) as be:
        backend = Wrapped(be, *wrap, robot=robot) if wrap else be
        with pytest.raises(fault):
            run_loop(robot, backend, camera, LoopOptions(hz=hz, steps=50, report=tmp_path / "r.json", safety=safety), subscribers=[Recorder(tmp_path / "rec")])
    assert len(robot.sent) == sent  # nothing was sent after the fault (a late or NaN action never reaches the robot)
    assert robot.go_safe_calls == 1 and not robot.is_connected
    assert camera is None or not camera.is_connected
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["stop_reason"].startswith(f"fault: {fault.__name__}")
    ds = Dataset(tmp_path / "rec")
    assert len(ds) == 1 and "fault" in ds.episodes[0]
    ep = ds.episode(0)
    assert ep["action"].shape[0] == ep["state"].shape[0] - 1  # actions stay between observations
    for i in range(len(ds)):
        ds.verify_episode(i)


def test_clam_run_inference_timeout_exits_1_with_one_line(rel, tmp_path, monkeypatch):
    import clamkit.runtime.cli as cli
    from clamkit.runtime.backends import make_backend as real

    from clamkit.robot import factory

    made, make_robot = {}, factory.make_robot

    def robot(*a, **k):
        made["robot"] = make_robot(*a, **k)
        return made["robot"]
    monkeypatch.setattr(factory, "make_robot", robot)
    monkeypatch.setattr(cli, "make_backend", lambda *a, **k: _SlowContext(real(*a, **k), made["robot"]))
    r = CliRunner().invoke(cli.run_main, [str(rel.write_bundle(tmp_path / "b")), "--robot", "fake", "--robot-opt", "semantics=test:delta",
                                          "--hz", "0", "--steps", "20", "--infer-timeout", "0.1", "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 1, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "InferenceTimeout" in errors[0] and "Traceback" not in r.output
    assert json.loads((tmp_path / "r.json").read_text())["stop_reason"].startswith("fault: InferenceTimeout")


class _SlowContext(Wrapped):
    def __init__(self, inner, robot):
        super().__init__(inner, "sleep", 2, 0.3, robot=robot)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.inner.close()


class HangingBackend:
    """From call `at` on, infer() never returns (a wedged GPU, a deadlocked driver) until `release` is set."""

    def __init__(self, inner, at: int):
        self.inner, self.at, self.calls = inner, at, 0
        self.meta, self.name = inner.meta, "hanging"
        self.release = threading.Event()

    def infer(self, obs):
        self.calls += 1
        if self.calls >= self.at:
            self.release.wait()  # "forever": the test sets it only to clean up
        return self.inner.infer(obs)


def test_hung_backend_is_stopped_within_the_deadline(rel, tmp_path):
    """The watchdog does not wait for a hung inference to return: the run stops within infer_timeout, sends
    nothing more, goes to the safe pose and reports one line (before: it waited forever)."""
    robot = FakeRobot(dim=2, semantics="test:delta", max_steps=1000)
    outcome = {}
    with make_backend(rel.write_bundle(tmp_path / "b")) as be:
        backend = HangingBackend(be, at=4)  # warm-up + 2 ticks answer, the 3rd tick's inference hangs

        def run():
            t0 = time.perf_counter()
            try:
                run_loop(robot, backend, None, LoopOptions(hz=0, steps=50, report=tmp_path / "r.json",
                                                           safety={"infer_timeout": 0.2}))
            except BaseException as e:  # noqa: BLE001 - inspected below
                outcome["error"] = e
            outcome["seconds"] = time.perf_counter() - t0

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=15)  # bounded: a loop that waits for the hung call must not hang the suite
        backend.release.set()
        assert not worker.is_alive(), "run_loop still waiting for the hung inference"
    assert isinstance(outcome.get("error"), InferenceTimeout) and outcome["seconds"] < 10
    assert len(robot.sent) == 2 and robot.go_safe_calls == 1 and not robot.is_connected
    reason = json.loads((tmp_path / "r.json").read_text())["stop_reason"]
    assert reason.startswith("fault: InferenceTimeout") and "200 ms" in reason and "\n" not in reason
