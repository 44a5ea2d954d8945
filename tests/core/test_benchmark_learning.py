"""benchmarks/learning.py's bookkeeping (the benchmark itself runs for hours and is not a test)."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture
def learning(tmp_path, monkeypatch, benchmark_module):
    mod = benchmark_module("learning")
    monkeypatch.setattr(mod, "CACHE", tmp_path / "cache")
    return mod


def _args(**kw):
    a = dict(obs="image", expert_episodes=3, play_episodes=2, pool_episodes=4, set=[], name=None, split="test",
             eval_episodes=2, vary_data=False, vary=None, end_after_success=None, config={"widowx-sim": "configs/widowx-image-cpu.yaml"})
    a.update(kw)
    return SimpleNamespace(**a)


def _fake_clis(learning, monkeypatch, calls):
    """Stand-ins for the CLIs: record what each was asked, write what the next step reads."""
    def sh(*cmd, log=None):
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1]) if "--out" in cmd else None
        if cmd[0].endswith("clam-record"):
            out.mkdir(parents=True, exist_ok=True)
            (out / "meta.json").write_text(json.dumps({"episodes": [{}] * int(cmd[cmd.index("--episodes") + 1])}))
        elif cmd[0].endswith("clam-train"):
            (out / "policy.pt").parent.mkdir(parents=True, exist_ok=True)
            (out / "policy.pt").write_text("")
        elif cmd[0].endswith("clam-export"):
            out.mkdir(parents=True, exist_ok=True)
            (out / "clam.json").write_text("{}")
        elif cmd[0].endswith("clam-eval"):
            Path(cmd[cmd.index("--json") + 1]).write_text(json.dumps({"success_rate": 0.5}))
        return ""
    monkeypatch.setattr(learning, "sh", sh)


def test_a_run_killed_before_its_first_checkpoint_is_resumed(learning, monkeypatch):
    calls = []
    _fake_clis(learning, monkeypatch, calls)
    a = _args()
    killed = learning.CACHE / "runs" / "reach-block" / "clam-s0-widowx-image-cpu-rich"
    killed.mkdir(parents=True)
    (killed / "config.yaml").write_text("algo: clam\n")  # clam-train refuses this directory without --resume
    learning.cell("widowx-sim", "reach-block", "clam", 0, "rich", 50, a)
    train = [c for c in calls if c[0].endswith("clam-train")]
    assert len(train) == 1 and "--resume" in train[0]


def test_vary_data_gives_each_seed_its_own_recordings(learning, monkeypatch):
    calls = []
    _fake_clis(learning, monkeypatch, calls)
    for seed in (0, 1):
        c = learning.cell("widowx-sim", "reach-block", "clam", seed, "rich", 50, _args(vary_data=True))
        assert c["data_draw"] == seed
    record_seeds = {int(c[c.index("--seed") + 1]) for c in calls if c[0].endswith("clam-record")}
    assert record_seeds == {1000, 2000, 11000, 12000}  # expert and play of draws 0 and 1
    trained_on = {c[c.index("--unlabelled") + 1] for c in calls if c[0].endswith("clam-train")}
    assert len(trained_on) == 2


def test_code_version_is_dirty_for_code_changes_not_for_the_benchmarks_own_results(learning, tmp_path):
    """A benchmark writes its results into the checkout it runs from; that must not mark its code as modified."""
    import subprocess

    from _common import code_version  # learning.py put benchmarks/ on the path

    repo = tmp_path / "repo"
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "benchmarks" / "results" / "cells.json").write_text("{}\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    clean = code_version(repo)
    assert clean and not clean.endswith("-dirty")
    (repo / "benchmarks" / "results" / "cells.json").write_text('{"cells": 1}\n')
    assert code_version(repo) == clean
    (repo / "code.py").write_text("x = 2\n")
    assert code_version(repo) == clean + "-dirty"


def test_runs_are_keyed_by_their_settings_not_by_the_results_name(learning, monkeypatch):
    """The bug: a run's name carried --name whenever --set was given, so the same settings under another results
    file trained again (and two results names could not share a validation run)."""
    calls = []
    _fake_clis(learning, monkeypatch, calls)
    for name, sets in (("screen", ["lam.fdm_input=action"]), ("report", ["lam.fdm_input=action"]),
                       ("other", ["lam.weight=0.1"]), ("plain", [])):
        learning.cell("widowx-sim", "reach-block", "clam", 0, "rich", 50, _args(name=name, set=sets))
    outs = [c[c.index("--out") + 1] for c in calls if c[0].endswith("clam-train")]
    assert len(outs) == 3  # "report" reused "screen"'s run
    screen, other, plain = outs
    assert len({screen, other, plain}) == 3 and plain.endswith("clam-s0-widowx-image-cpu-rich")
    assert learning.settings_tag(["a=1", "b=2"]) == learning.settings_tag(["b=2", "a=1"])


def test_a_named_validation_run_is_filed_as_validation(learning, monkeypatch, tmp_path):
    monkeypatch.setattr(learning, "RESULTS", tmp_path)
    monkeypatch.setattr(learning.sys, "argv", ["learning.py", "--name", "screen", "--split", "val", "--report"])
    (tmp_path / "screen-val.json").write_text(json.dumps({"cells": []}))
    monkeypatch.setattr(learning, "report", lambda done, name, regime: name)
    assert learning.main() == "screen-val"


def test_vary_records_trains_and_evaluates_with_the_visual_variation(learning, monkeypatch):
    calls = []
    _fake_clis(learning, monkeypatch, calls)
    plain = learning.cell("widowx-sim", "push-button", "clam", 0, "rich", 50, _args())
    varied = learning.cell("widowx-sim", "push-button", "clam", 0, "rich", 50, _args(vary="all"))
    assert plain["vary"] is None and varied["vary"] == "all"
    records = [c for c in calls if c[0].endswith("clam-record")]
    assert [("--vary" in c) for c in records] == [False, False, True, True]  # expert and play, each way
    assert all(c[c.index("--vary") + 1] == "all" for c in records if "--vary" in c)
    evals = [c for c in calls if c[0].endswith("clam-eval")]
    assert "--robot-opt" not in evals[0] and evals[1][evals[1].index("--robot-opt") + 1] == "vary=all"
    train = [c[c.index("--out") + 1] for c in calls if c[0].endswith("clam-train")]
    assert len(set(train)) == 2  # its own run, on its own recordings


def test_end_after_success_cuts_only_the_expert_recording_and_keys_the_run(learning, monkeypatch):
    calls = []
    _fake_clis(learning, monkeypatch, calls)
    full = learning.cell("widowx-sim", "push-button", "clam", 0, "rich", 50, _args())
    cut = learning.cell("widowx-sim", "push-button", "clam", 0, "rich", 50, _args(end_after_success=5))
    assert full["end_after_success"] is None and cut["end_after_success"] == 5
    records = [c for c in calls if c[0].endswith("clam-record")]
    cuts = [(c[c.index("--policy") + 1], c[c.index("--end-after-success") + 1] if "--end-after-success" in c else None)
            for c in records]
    assert cuts == [("expert", None), ("play", None), ("expert", "5")]  # play is task-agnostic: never cut
    train = [c for c in calls if c[0].endswith("clam-train")]
    assert len({c[c.index("--out") + 1] for c in train}) == 2  # its own run
    assert train[1][train[1].index("--labelled") + 1] == train[0][train[0].index("--labelled") + 1]


def test_a_cached_run_reports_the_commit_it_was_trained_at(learning, monkeypatch):
    """The bug: a cell reusing a run trained at an earlier commit reported only the evaluating checkout's version."""
    calls = []
    _fake_clis(learning, monkeypatch, calls)
    bundle = learning.CACHE / "bundles" / "reach-block" / "vpt-s0-widowx-image-cpu-rich"
    bundle.mkdir(parents=True)
    (bundle / "clam.json").write_text(json.dumps({"provenance": {"code_version": "0.1.0+gc1c318a"}}))
    run = learning.CACHE / "runs" / "reach-block" / "vpt-s0-widowx-image-cpu-rich"
    run.mkdir(parents=True)
    (run / "policy.pt").write_text("")
    c = learning.cell("widowx-sim", "reach-block", "vpt", 0, "rich", 50, _args())
    assert not [x for x in calls if x[0].endswith(("clam-train", "clam-export"))]  # reused as it was
    assert c["provenance"]["trained_code_version"] == "c1c318a"


def test_merge_builds_one_table_from_several_files_later_files_winning(learning, monkeypatch, tmp_path):
    monkeypatch.setattr(learning, "RESULTS", tmp_path)
    cell = lambda task, method, seed, score: {"task": task, "method": method, "seed": seed, "score": score}  # noqa: E731
    (tmp_path / "old.json").write_text(json.dumps({"cells": [cell("a", "clam", 0, 0.1), cell("b", "clam", 0, 0.2),
                                                             cell("a", "vpt", 0, 0.3)]}))
    (tmp_path / "new.json").write_text(json.dumps({"cells": [cell("a", "clam", 0, 0.9), cell("c", "clam", 0, 0.4)]}))
    monkeypatch.setattr(learning, "report", lambda done, name, regime: done)
    monkeypatch.setattr(learning.sys, "argv", ["learning.py", "--name", "both", "--methods", "clam", "--merge", "old", "new"])
    got = {(c["task"], c["score"], c["merged_from"]) for c in learning.main()}
    assert got == {("a", 0.9, "new"), ("b", 0.2, "old"), ("c", 0.4, "new")}  # vpt filtered out, new's a replaces old's
    assert len(json.loads((tmp_path / "both.json").read_text())["cells"]) == 3
    monkeypatch.setattr(learning.sys, "argv", ["learning.py", "--name", "both", "--merge", "old:vpt", "new"])
    got = {(c["task"], c["method"], c["score"]) for c in learning.main()}
    assert got == {("a", "vpt", 0.3), ("a", "clam", 0.9), ("c", "clam", 0.4)}  # only vpt from old
    monkeypatch.setattr(learning.sys, "argv", ["learning.py", "--name", "both", "--merge", "old:clam,b", "new:c"])
    got = {(c["task"], c["method"], c["score"]) for c in learning.main()}
    assert got == {("b", "clam", 0.2), ("c", "clam", 0.4)}  # old's clam cells of task b, new's of task c
    monkeypatch.setattr(learning.sys, "argv", ["learning.py", "--name", "x", "--merge", "missing"])
    with pytest.raises(SystemExit, match="no results file"):
        learning.main()
