"""CLAM and the four baselines run from the same CLI on the same data; each yields a DeployPolicy."""

import json

import numpy as np
import pytest
import torch

from clamkit.trainer.deploy import DeployPolicy, load_policy

STAGES = {"clam": {"lam", "relabel", "policy"}, "bc-play": {"policy"}, "bc-expert": {"policy"},
          "vq": {"lam", "play_latents", "decoder", "relabel", "policy"}, "vpt": {"idm", "relabel", "policy"}}


@pytest.mark.parametrize("algo", list(STAGES))
def test_every_algo_trains_and_deploys(algo, linear_data, tmp_path, helpers):
    expert, play = linear_data
    out = tmp_path / algo
    helpers.clam_train(expert, play, out, f"algo={algo}", "lam.steps=60", "idm.steps=60", "policy.steps=60",
                       "vq.decoder_steps=60", "lam.eval_every=20", "policy.eval_every=20")
    policy, meta = load_policy(out / "policy.pt")
    assert isinstance(policy, DeployPolicy) and policy.input_names == ["state"]
    assert meta["algo"] == algo
    assert meta["la_dim"] == (8 if algo in ("clam", "vq") else 0)
    assert (policy.decoder is not None) == (algo in ("clam", "vq"))
    x = torch.randn(3, 4)
    a = policy(x)
    assert a.shape == (3, 2) and torch.equal(policy(x), a)  # eval mode: deterministic
    assert not torch.allclose(policy(x + 1.0), a)  # it reads its observation (a collapsed policy would not)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"]) == STAGES[algo]
    # the same early-stopping rule for every policy: the kept weights are those of the lowest held-out error
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r["val/policy_mse"] for r in records if "val/policy_mse" in r]
    assert len(val) >= 2 and summary["metrics"]["select/policy_score"] == pytest.approx(min(val))
    if algo != "bc-play":  # hidden expert actions exist here, so every algo reports the same diagnostic
        assert np.isfinite(summary["metrics"]["probe/policy_action_mse"])


@pytest.mark.parametrize("rule, probe", [("fdm", "probe/lam_val_fdm"), ("decoder", "probe/decoder_mse"),
                                         ("disagreement", "probe/disagreement")])
def test_lam_selection_keeps_the_step_its_probe_scored_best(rule, probe, linear_data, tmp_path, helpers):
    """Each label-free rule keeps the LAM checkpoint where its own probe was lowest; "last" keeps the last."""
    expert, play = linear_data
    steps = ["lam.steps=200", "idm.steps=100", "policy.steps=20", "lam.eval_every=25", "model.hidden=[32]"]
    helpers.clam_train(expert, play, tmp_path / rule, *steps, f"lam.select={rule}")
    records = [json.loads(ln) for ln in (tmp_path / rule / "metrics.jsonl").read_text().splitlines()]
    scored = {r["step"]: r[probe] for r in records if probe in r and r.get("stage") == "lam"}
    assert len(scored) == 8
    best_step = min(scored, key=scored.get)
    m = json.loads((tmp_path / rule / "summary.json").read_text())["metrics"]
    assert m["select/lam_score"] == pytest.approx(scored[best_step])
    assert m["select/lam_step"] == best_step - min(scored) + 25  # stage-local step of the kept checkpoint


def test_lam_selection_last_keeps_the_last_step(linear_data, tmp_path, helpers):
    expert, play = linear_data
    helpers.clam_train(expert, play, tmp_path / "l", "lam.steps=200", "policy.steps=20", "lam.eval_every=50",
                       "model.hidden=[32]", "lam.select=last")
    last = json.loads((tmp_path / "l" / "summary.json").read_text())["metrics"]
    assert last["select/lam_step"] == 200 and "probe/disagreement" not in last and "select/lam_score" not in last


def test_latent_policy_in_action_space_trains_only_the_policy(linear_data, tmp_path, helpers):
    """policy.space=action regresses d(π(o)) on d(z) through the frozen decoder: the decoder is untouched."""
    expert, play = linear_data
    steps = ["lam.steps=60", "idm.steps=60", "lam.eval_every=20", "lam.select=last"]
    helpers.clam_train(expert, play, tmp_path / "lat", *steps, "policy.steps=60")
    helpers.clam_train(expert, play, tmp_path / "act", *steps, "policy.steps=60", "policy.space=action")
    lat, _ = load_policy(tmp_path / "lat" / "policy.pt")
    act, _ = load_policy(tmp_path / "act" / "policy.pt")
    for a, b in zip(lat.decoder.state_dict().values(), act.decoder.state_dict().values()):
        assert torch.equal(a, b)  # same seed, same stage 1: the action-space stage 3 never moved the decoder
    assert any(not torch.equal(a, b) for a, b in zip(lat.policy.state_dict().values(), act.policy.state_dict().values()))
    metrics = json.loads((tmp_path / "act" / "summary.json").read_text())["metrics"]
    base = json.loads((tmp_path / "lat" / "summary.json").read_text())["metrics"]
    assert metrics["probe/policy_action_mse"] <= 1.5 * base["probe/policy_action_mse"] + 0.01
