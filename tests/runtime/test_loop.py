"""run_loop with the fake robot: episodes, rate, dry run, faults, Ctrl-C, spec checks, recording."""

import json
import os
import signal
import threading
import time

import pytest

from clamkit.dataset import Dataset
from clamkit.errors import SpecMismatch
from clamkit.robot.fake import FakeCamera, FakeEpisodeFault, FakeFault, FakeRobot
from clamkit.runtime.backends import make_backend
from clamkit.runtime.loop import LoopOptions, run_loop
from clamkit.runtime.subscribers import Recorder


def test_policy_reaches_goals_over_seeded_episodes(bundles):
    robot = FakeRobot(dim=2, max_steps=30)
    with make_backend(bundles("state")) as be:
        s = run_loop(robot, be, None, LoopOptions(hz=0, episodes=3, seed=7))
    assert robot.resets == [7, 8, 9]
    assert s["success_rate"] == 1.0 and s["ticks"] == 90 and s["stop_reason"] == "completed"
    assert s["latency_ms"]["infer"]["n"] == 90 and s["latency_ms"]["tick"]["p99"] > 0
    assert robot.go_safe_calls == 1 and not robot.is_connected


def test_fixed_rate_paces_ticks(bundles):
    robot = FakeRobot(dim=2, max_steps=1000)
    with make_backend(bundles("state")) as be:
        t0 = time.perf_counter()
        s = run_loop(robot, be, None, LoopOptions(hz=50, steps=10))
        dt = time.perf_counter() - t0
    assert 0.17 < dt < 1.0  # 10 ticks at 50 Hz ~ 0.2 s (loose: 2 shared cores)
    assert s["ticks"] == 10


def test_image_policy_with_a_camera_and_resizing(bundles, tmp_path):
    robot = FakeRobot(dim=2, max_steps=5)
    camera = FakeCamera(64, 48)  # the bundle wants 32x32: the loop resizes
    with make_backend(bundles("image", hw=(32, 32))) as be:
        s = run_loop(robot, be, camera, LoopOptions(hz=0), subscribers=[Recorder(tmp_path / "rec")])
    assert s["ticks"] == 5 and s["latency_ms"]["camera_to_action"]["n"] == 5
    ds = Dataset(tmp_path / "rec")
    assert ds.episode(0)["image"].shape == (6, 48, 64, 3)  # recorded at camera resolution, o_0..o_T


def test_each_tick_is_timed_stage_by_stage(bundles):
    robot = FakeRobot(dim=2, max_steps=20)
    with make_backend(bundles("image", hw=(32, 32))) as be:
        s = run_loop(robot, be, FakeCamera(64, 48), LoopOptions(hz=0))
    st, lat = s["latency_ms"]["stages"], s["latency_ms"]
    assert set(st) == {"capture", "robot_state", "preprocess", "safety", "send"} and all(v["n"] == 20 for v in st.values())
    assert st["preprocess"]["p50"] > 0  # a 64x48 frame is resized to the bundle's 32x32 in this stage
    # stages + inference make up the tick (the rest is a few perf_counter calls)
    assert sum(v["mean"] for v in st.values()) + lat["infer"]["mean"] <= lat["tick"]["mean"] * 1.001 + 1e-3


def test_dry_run_sends_nothing(bundles, tmp_path):
    robot = FakeRobot(dim=2, max_steps=1000)
    with make_backend(bundles("state")) as be:
        s = run_loop(robot, be, None, LoopOptions(hz=0, steps=5, dry_run=True), subscribers=[Recorder(tmp_path / "rec")])
    assert robot.sent == [] and robot.go_safe_calls == 0
    assert s["ticks"] == 5 and s["dry_run"] is True
    ds = Dataset(tmp_path / "rec")
    assert not ds.is_labelled(0)  # nothing was executed, so no action labels


def test_fault_mid_run_goes_safe_records_and_reraises(bundles, tmp_path):
    robot = FakeRobot(dim=2, max_steps=1000, fail_at=6)
    with make_backend(bundles("state")) as be:
        with pytest.raises(FakeFault):
            run_loop(robot, be, None, LoopOptions(hz=0, report=tmp_path / "r.json"), subscribers=[Recorder(tmp_path / "rec")])
    assert robot.go_safe_calls == 1 and not robot.is_connected
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["stop_reason"].startswith("fault: FakeFault") and rep["ticks"] == 6
    ds = Dataset(tmp_path / "rec")
    ep = ds.episode(0)
    assert ep["state"].shape[0] == 6 and ep["action"].shape == (5, 2)  # o_0..o_5; the 6th action had no o_6
    assert "fault" in ds.episodes[0]


def test_episode_fault_fails_its_episode_when_told_to_continue(bundles, tmp_path):
    """An EpisodeFault (the WidowX effort guard's kind) ends just its episode, as a failure with the reason; the
    next episode starts with reset(). Other faults, and this one by default, stop the run."""
    robot = FakeRobot(dim=2, max_steps=30, fail_at=4, episode_fault=True)
    with make_backend(bundles("state")) as be:
        s = run_loop(robot, be, None, LoopOptions(hz=0, episodes=3, seed=5, continue_after_fault=True),
                     subscribers=[Recorder(tmp_path / "rec")])
    assert s["stop_reason"] == "completed" and robot.resets == [5, 6, 7] and s["ticks"] == 12
    assert s["success_rate"] == 0.0 and robot.go_safe_calls == 1
    for ep in s["episodes"]:
        assert ep["success"] is False and ep["fault"] == "FakeEpisodeFault: fake: injected fault in send_action at step 4"
        assert "success_before_fault" in ep
    assert len(Dataset(tmp_path / "rec").episodes) == 3
    with make_backend(bundles("state")) as be:
        with pytest.raises(FakeEpisodeFault):
            run_loop(FakeRobot(dim=2, max_steps=30, fail_at=4, episode_fault=True), be, None, LoopOptions(hz=0, episodes=3))
        with pytest.raises(FakeFault):  # not an episode fault: the run stops even when told to continue
            run_loop(FakeRobot(dim=2, max_steps=30, fail_at=4), be, None, LoopOptions(hz=0, episodes=3, continue_after_fault=True))


def test_sigint_mid_run_stops_safely(bundles, tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    robot = FakeRobot(dim=2, max_steps=100000)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    with make_backend(bundles("state")) as be:
        timer.start()
        try:
            s = run_loop(robot, be, None, LoopOptions(hz=50, report=tmp_path / "r.json"), subscribers=[Recorder(tmp_path / "rec")])
        finally:
            timer.cancel()
    assert s["stop_reason"].startswith("interrupted")
    assert robot.go_safe_calls == 1 and not robot.is_connected
    assert 5 <= s["ticks"] <= 60
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["ticks"] == s["ticks"] and rep["episodes"][0]["interrupted"] is True
    ds = Dataset(tmp_path / "rec")
    assert len(ds) == 1 and ds.episode(0)["action"].shape == (s["ticks"], 2)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


@pytest.mark.parametrize("robot_kw, camera, match", [
    (dict(state=False), FakeCamera(32, 32), "needs observation 'state'"),  # state bundle on a pixel-only setup
    (dict(dim=2, action_dim=3), None, "2-D actions, robot takes 3-D"),
    (dict(dim=2, semantics="joint_pos"), None, "mean 'fake:delta_pos'"),
    (dict(dim=3), None, "shape"),
])
def test_spec_mismatch_before_anything_moves(bundles, tmp_path, robot_kw, camera, match):
    robot = FakeRobot(**robot_kw)
    with make_backend(bundles("state")) as be:
        with pytest.raises(SpecMismatch, match=match):
            run_loop(robot, be, camera, LoopOptions(hz=0), subscribers=[Recorder(tmp_path / "rec")])
    assert robot.sent == [] and robot.resets == [] and robot.go_safe_calls == 0
    assert not robot.is_connected


def test_image_bundle_without_camera_is_a_mismatch(bundles):
    with make_backend(bundles("image")) as be:
        with pytest.raises(SpecMismatch, match="'image'"):
            run_loop(FakeRobot(dim=2), be, None, LoopOptions(hz=0))


class SlowBackend:
    """Wraps a backend and sleeps in infer(): the loop must count overruns and not burst to catch up."""

    def __init__(self, inner, delay):
        self.inner, self.delay, self.meta, self.name = inner, delay, inner.meta, "slow"

    def infer(self, obs):
        time.sleep(self.delay)
        return self.inner.infer(obs)


def test_overruns_are_counted_and_warned(bundles, caplog):
    import logging

    with make_backend(bundles("state")) as be, caplog.at_level(logging.WARNING):
        s = run_loop(FakeRobot(dim=2, max_steps=1000), SlowBackend(be, 0.03), None, LoopOptions(hz=50, steps=5))
    assert s["missed_deadlines"] == 5 and s["latency_ms"]["infer"]["p50"] >= 25
    assert any("overran" in r.message for r in caplog.records)


def test_end_of_a_recorded_camera_stream_is_a_normal_stop(bundles, tmp_path):
    class EndingCamera(FakeCamera):
        def read(self):
            if self._index >= 3:
                raise EOFError("end of recording")
            return super().read()

    robot = FakeRobot(dim=2, max_steps=1000)
    with make_backend(bundles("image", hw=(32, 32))) as be:
        s = run_loop(robot, be, EndingCamera(32, 32), LoopOptions(hz=0, steps=10), subscribers=[Recorder(tmp_path / "rec")])
    assert s["ticks"] == 3 and s["stop_reason"].startswith("end of camera stream")
    assert robot.go_safe_calls == 1
    assert len(Dataset(tmp_path / "rec")) == 1


def test_steps_alone_counts_ticks_over_episodes(bundles):
    robot = FakeRobot(dim=2, max_steps=30)
    with make_backend(bundles("state")) as be:
        s = run_loop(robot, be, None, LoopOptions(hz=0, steps=70, seed=3))
    assert s["ticks"] == 70 and robot.resets == [3, 4, 5]
    robot = FakeRobot(dim=2, max_steps=30)
    with make_backend(bundles("state")) as be:
        s = run_loop(robot, be, None, LoopOptions(hz=0, steps=10, episodes=2))  # with --episodes, --steps caps each episode
    assert s["ticks"] == 20 and robot.resets == [0, 1]
