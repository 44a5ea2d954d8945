"""The method learns, not only runs: a linear system o_{t+1} = M o_t + B a_t.

Unlabelled: 20 expert episodes of a fixed linear feedback policy (their actions are recorded but
hidden from CLAM). Labelled: 10 play episodes with uniform random actions. CLAM's decoder must
recover the action from the latent on held-out play (R² > 0.9), and the composed policy d(π(o))
must be close to an oracle BC trained on the hidden expert actions, and far better than BC on play.
"""

import json

import numpy as np
import pytest
import torch

from clamkit.dataset import Dataset
from clamkit.trainer.deploy import load_policy

STEPS = ["lam.steps=2000", "idm.steps=1500", "policy.steps=1500", "optim.lr=1e-3", "model.hidden=[128, 128]"]


def _final(run, key):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if key in ln][-1][key]


def _eval_error(run, expert_dir) -> float:
    """MSE (normalised action units) of the deployed policy against the expert's true actions, all windows."""
    ds = Dataset(expert_dir)
    policy, meta = load_policy(run)
    span = (np.array(meta["action"]["high"]) - np.array(meta["action"]["low"])) / 2
    errs = []
    for i in range(len(ds)):
        ep = ds.episode(i)
        with torch.no_grad():
            a = policy(torch.from_numpy(np.array(ep["state"][:-1]))).numpy()
        errs.append(((a - ep["action"]) / span) ** 2)
    return float(np.concatenate(errs).mean())


@pytest.mark.slow
def test_clam_learns_a_linear_system(linear_data, tmp_path, helpers):
    expert, play = linear_data
    runs = {}
    for algo in ("clam", "bc-expert", "bc-play"):
        runs[algo] = tmp_path / algo
        helpers.clam_train(expert, play, runs[algo], f"algo={algo}", *STEPS)
    r2 = _final(runs["clam"], "probe/decoder_r2")
    err = {k: _eval_error(v, expert) for k, v in runs.items()}
    ds = Dataset(expert)
    var = float(np.var(np.concatenate([ds.episode(i)["action"] for i in range(len(ds))]), 0).mean())
    print(f"decoder R² {r2:.3f}; action MSE clam {err['clam']:.5f}, bc-expert {err['bc-expert']:.5f}, "
          f"bc-play {err['bc-play']:.5f}; expert action variance {var:.4f}")
    assert r2 > 0.9
    assert err["clam"] < 1.5 * err["bc-expert"] + 0.01  # close to the oracle (small absolute gap)
    assert err["clam"] < 0.1 * var  # explains > 90% of the expert's action variance
    assert err["clam"] < 0.25 * err["bc-play"]  # and far better than BC on play
    # the relabels track the hidden actions
    assert _final(runs["clam"], "probe/relabel_mse") < 0.02


def test_idm_sees_small_motions_on_metaworld_play(metaworld_play):
    """Regression: fed raw (o_{t-1}, o_t, o_{t+1}) windows, the MLP IDM learned MetaWorld play actions far
    too slowly (held-out R² ≈ 0.2 after 2000 steps; a linear fit of the same windows gets 0.78): 1 cm hand
    motions are tiny differences of O(1) normalised positions. Scaling Δ by its RMS fixes the conditioning."""
    from clamkit.trainer.common import build_deploy, r2_score
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.data import load_data
    from clamkit.trainer.mlp import IDM

    torch.set_num_threads(1)
    expert, play = metaworld_play
    cfg = TrainConfig()
    d = load_data(cfg, [expert], [play], torch.device("cpu"))
    assert d.delta_rms is not None and (d.delta_rms < 0.5).any()  # small per-step motions exist
    deploy = build_deploy(cfg, d, 4, True, False)
    train_ids, val_ids = d.lab.window_ids(d.lab_train), d.lab.window_ids(d.lab_val)

    def fit(scaled: bool) -> float:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        m = IDM((39,), 4, [256, 256], squash=True)
        if scaled:
            m.delta_scale.copy_(1 / torch.from_numpy(d.delta_rms))
        opt = torch.optim.AdamW(m.parameters(), 1e-3)
        for _ in range(400):
            ids = train_ids[rng.integers(0, len(train_ids), 64)]
            loss = (m(deploy.prep(d.lab.get(ids, (-1, 0, 1)))) - deploy.normalize(d.lab.actions(ids))).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return r2_score(m(deploy.prep(d.lab.get(val_ids, (-1, 0, 1)))), deploy.normalize(d.lab.actions(val_ids)))

    scaled, raw = fit(True), fit(False)
    print(f"held-out IDM R² after 400 steps: Δ-scaled {scaled:.3f}, unscaled {raw:.3f}")
    assert scaled > 0.5 and scaled > raw + 0.15
