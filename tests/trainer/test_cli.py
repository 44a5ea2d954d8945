"""clam-train end to end on a small MetaWorld recording, plus the one-line errors on bad input."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from clamkit.dataset import DatasetWriter
from clamkit.runtime.evaluate import evaluate
from clamkit.specs import ArraySpec, ObservationSpec
from clamkit.trainer.cli import main
from clamkit.trainer.deploy import load_policy, sample_observations

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def test_smoke_metaworld_all_stages(metaworld_data, tmp_path, helpers):
    expert, play = metaworld_data
    out = tmp_path / "run"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "clamkit.trainer", "--config", SMOKE, "--unlabelled", expert,
                           "--labelled", play, "--out", str(out)], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    print(f"smoke run (subprocess, incl. imports): {seconds:.1f} s")
    for name in ("policy.pt", "config.yaml", "metrics.jsonl", "checkpoint.pt", "summary.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*"))
    assert "done in" in proc.stdout and "stage lam" in proc.stdout

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*records)
    for k in ("losses/lam_fdm", "losses/lam_decoder", "losses/policy", "probe/decoder_r2", "probe/decoder_mse",
              "probe/lam_val_fdm", "probe/latent_spread", "probe/relabel_mse", "probe/policy_action_mse", "charts/steps_per_s", "select/lam_step"):
        assert k in keys, k
    assert {r["stage"] for r in records if "stage" in r} == {"lam", "policy", "relabel"}  # no supervised IDM with select=fdm

    policy, meta = load_policy(out)
    assert policy.input_names == ["state"]
    assert meta["observation"] == {"state": {"shape": [39], "dtype": "float32"}}
    assert meta["action"]["dim"] == 4 and meta["algo"] == "clam" and meta["la_dim"] == 8 and meta["fps"] == 80.0
    assert set(meta["provenance"]) == {"config", "dataset_fingerprint", "code_version"}
    assert meta["provenance"]["config"]["lam"]["weight"] == 1.0  # derived field resolved
    obs = sample_observations(out / "policy.pt", 8)
    assert obs["state"].shape == (8, 39) and obs["state"].dtype == np.float32
    a = policy(torch.from_numpy(obs["state"]))
    assert a.shape == (8, 4) and torch.equal(policy(torch.from_numpy(obs["state"])), a)  # eval mode: deterministic
    assert not torch.allclose(a[:1].expand(8, 4), a)  # different observations, different actions

    # the same command again, without --resume: exit 2 and say how to continue
    again = CliRunner().invoke(main, ["--config", SMOKE, "--unlabelled", expert, "--labelled", play, "--out", str(out)])
    assert again.exit_code == 2
    assert "--resume" in again.output
    # --resume on a finished run: nothing to redo, same policy
    before = torch.load(out / "policy.pt", weights_only=True)["state_dict"]
    helpers.clam_train(expert, play, out, resume=True)
    after = torch.load(out / "policy.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_help_has_an_example():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    assert "Example:" in r.output and "clam-train --config" in r.output and "--resume" in r.output


def _error(args):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.output
    return lines[0]


def test_bad_inputs_are_one_line_errors(linear_data, tmp_path, helpers):
    expert, play = linear_data
    base = ["--config", SMOKE, "--out", str(tmp_path / "run")]
    assert "no such dataset directory" in _error(base + ["--unlabelled", str(tmp_path / "nope"), "--labelled", play])
    # a labelled set without any labelled episode
    unl = helpers.write_linear(tmp_path / "video", "expert", 3, labelled=False)
    assert "no labelled episodes" in _error(base + ["--unlabelled", expert, "--labelled", unl])
    # spec mismatch between datasets
    w = DatasetWriter(tmp_path / "wide", observation=ObservationSpec({"state": ArraySpec((7,), "float32")}), action=None,
                      fps=10, robot="x")
    w.add_episode({"state": np.zeros((5, 7), np.float32)})
    assert "spec mismatch" in _error(base + ["--unlabelled", str(tmp_path / "wide"), "--labelled", play])
    assert "unknown config key 'lam.stpes'" in _error(base + ["--unlabelled", expert, "--labelled", play, "--set", "lam.stpes=3"])
    # the oracle baseline needs the unlabelled set's hidden actions
    msg = _error(base + ["--unlabelled", unl, "--labelled", play, "--set", "algo=bc-expert"])
    assert "bc-expert" in msg and "without actions" in msg
    # image config on state-only data
    assert "data.obs" in _error(base + ["--unlabelled", expert, "--labelled", play, "--set", "data.obs=image"])


def test_resume_refuses_a_changed_config(linear_data, tmp_path, helpers):
    expert, play = linear_data
    helpers.clam_train(expert, play, tmp_path / "run", "lam.steps=20", "idm.steps=20", "policy.steps=20")
    msg = _error(["--config", SMOKE, "--unlabelled", expert, "--labelled", play, "--out", str(tmp_path / "run"),
                  "--resume", "--set", "lam.steps=30", "--set", "idm.steps=20", "--set", "policy.steps=20"])
    assert "different config" in msg and "lam.steps: 20 -> 30" in msg


def test_eval_after_training_runs_the_exported_bundle_through_the_runtime_loop(metaworld_data, tmp_path, helpers):
    expert, play = metaworld_data
    out = tmp_path / "run"
    helpers.clam_train(expert, play, out, "eval.episodes=2", "eval.max_steps=20")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval"]["env"] == "metaworld:reach-v3" and summary["eval"]["episodes"] == 2
    assert summary["eval"]["latency_ms"]["infer"]["n"] == 40
    # the very evaluation clam-eval runs: same bundle, same loop, seeds from 100000 (unseen: recordings seed from 0)
    again = evaluate(out / "bundle", "metaworld:reach-v3", episodes=2, seed=100_000, max_steps=20)
    assert [e["seed"] for e in again["episodes"]] == [100_000, 100_001]
    assert summary["eval"]["success_rate"] == again["success_rate"]
    assert (out / "bundle" / "policy.onnx").is_file()  # the real export, parity-checked
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/success_rate" in r for r in records)
