"""The pixel path: smoke-image.yaml trains every CLAM stage on 64x64 frames; the policy takes raw uint8."""

import json

import numpy as np
import pytest
import torch

from clamkit.trainer.deploy import load_policy, sample_observations


def test_smoke_image_all_stages(image_data, tmp_path, helpers):
    expert, play = image_data
    out = tmp_path / "run"
    helpers.clam_train(expert, play, out, config=helpers.SMOKE_IMAGE)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"]) == {"lam", "relabel", "policy"} and summary["obs"] == "image"
    peaks = [summary["stages"][k]["peak_rss_mib"] for k in ("lam", "relabel", "policy")]
    assert peaks[0] > 50 and peaks == sorted(peaks)  # the process's peak so far: torch alone is > 50 MiB
    policy, meta = load_policy(out)
    assert policy.input_names == ["image"]
    assert meta["observation"] == {"image": {"shape": [64, 64, 3], "dtype": "uint8"}}
    assert meta["provenance"]["config"]["lam"]["weight"] == 0.01  # λ for pixels
    obs = sample_observations(out, 4)["image"]
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    a = policy(torch.from_numpy(obs))
    assert a.shape == (4, 2) and torch.equal(policy(torch.from_numpy(obs)), a)  # eval mode: deterministic
    assert not torch.allclose(policy(torch.from_numpy(255 - obs)), a)  # it looks at the frame
    keys = set().union(*map(json.loads, (out / "metrics.jsonl").read_text().splitlines()))
    assert {"probe/decoder_r2", "probe/lam_val_fdm", "probe/relabel_mse", "losses/lam_fdm"} <= keys


@pytest.mark.parametrize("algo", ["vq", "vpt"])
def test_image_baselines_memmapped_84_resized_to_64(algo, tmp_path, helpers):
    expert = helpers.write_images(tmp_path / "e", "expert", 3, T=12, size=84)
    play = helpers.write_images(tmp_path / "p", "play", 2, T=12, size=84)
    out = tmp_path / algo
    helpers.clam_train(expert, play, out, f"algo={algo}", "data.storage=memmap", "data.image_size=64",
                       "lam.steps=4", "idm.steps=4", "policy.steps=4", "vq.decoder_steps=4", config=helpers.SMOKE_IMAGE)
    policy, meta = load_policy(out)
    assert meta["observation"]["image"]["shape"] == [84, 84, 3]  # raw frames in, resize inside the policy
    assert policy.prep.size == 64
    a = policy(torch.randint(0, 256, (2, 84, 84, 3), dtype=torch.uint8))
    assert a.shape == (2, 2)
