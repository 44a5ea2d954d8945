"""benchmarks/visual_variation.py's bookkeeping (its evaluations run for minutes and are not a test)."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace


def test_each_bundle_is_evaluated_plain_and_varied_once_and_recorded_with_its_hash(tmp_path, monkeypatch, benchmark_module):
    mod = benchmark_module("visual_variation")
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    calls, real_run = [], subprocess.run

    def run(cmd, **kw):  # a stand-in clam-eval: success 0.8 as rendered, 0.3 with the variation
        if not str(cmd[0]).endswith("clam-eval"):
            return real_run(cmd, **kw)  # git, for the code version
        calls.append(cmd)
        Path(cmd[cmd.index("--json") + 1]).write_text(json.dumps({"success_rate": 0.3 if "vary=all" in cmd else 0.8}))
        return SimpleNamespace(returncode=0, stderr="")
    monkeypatch.setattr(subprocess, "run", run)  # benchmarks/_common.run_cli runs the CLI
    bundle = tmp_path / "clam-s0"
    bundle.mkdir()
    (bundle / "policy.onnx").write_bytes(b"weights")
    for _ in range(2):  # the second run resumes: nothing is evaluated again
        monkeypatch.setattr(sys, "argv", ["visual_variation.py", str(bundle), "--task", "push-button", "--episodes", "4"])
        mod.main()
    assert len(calls) == 2 and ["--robot-opt", "vary=all"] == calls[1][calls[1].index("--robot-opt"):][:2]
    (entry,) = json.loads((tmp_path / "results" / "visual-variation.json").read_text()).values()
    assert entry["success"] == {"plain": 0.8, "varied": 0.3} and entry["drop"] == 0.5
    assert entry["bundle_sha256"] == mod.bundle_sha256(bundle) and entry["episodes"] == 4
