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


def test_random_shift_moves_every_frame_of_a_window_together():
    from clamkit.trainer.conv import random_shift
    x = torch.rand(64, 3, 3, 16, 16)  # (B, K frames, C, S, S)
    torch.manual_seed(0)
    y = random_shift(x, 2)
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x.reshape(64, 9, 16, 16), (2,) * 4, mode="replicate")
    offsets = set()
    for b in range(64):  # each sample is one crop of its padded frames, the same crop for all K frames
        match = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(padded[b, :, dy:dy + 16, dx:dx + 16], y[b].reshape(9, 16, 16))]
        assert match
        offsets.add(match[0])
    assert len(offsets) > 5  # offsets vary across the batch
    torch.manual_seed(0)
    assert torch.equal(random_shift(x, 2), y)  # the global RNG (checkpointed) decides


def test_shift_reaches_training_not_the_exported_policy(image_data, tmp_path, helpers):
    expert, play = image_data
    outs = []
    for pad in (0, 4):
        outs.append(tmp_path / f"shift{pad}")
        helpers.clam_train(expert, play, outs[-1], f"data.shift={pad}", "lam.steps=4", "policy.steps=4",
                           config=helpers.SMOKE_IMAGE)
    (plain, _), (shifted, _) = load_policy(outs[0]), load_policy(outs[1])
    obs = torch.from_numpy(sample_observations(outs[1], 4)["image"])
    assert not torch.allclose(plain(obs), shifted(obs))  # same seed, same data: only the shifts differ
    assert torch.equal(shifted(obs), shifted(obs))  # the exported policy never shifts


def test_idm_motion_reads_the_frame_differences():
    from clamkit.trainer.conv import IDM
    torch.manual_seed(0)
    motion = IDM((3, 16, 16), 4, [8], [4, 8], motion=True)
    frames = IDM((3, 16, 16), 4, [8], [4, 8])
    frames.load_state_dict(motion.state_dict())
    w = torch.rand(5, 3, 3, 16, 16)  # (B, o_{t-1} o_t o_{t+1}, C, S, S)
    diffs = torch.stack([w[:, 1], w[:, 1] - w[:, 0], w[:, 2] - w[:, 1]], 1)
    assert torch.allclose(motion(w), frames(diffs))
    assert not torch.allclose(motion(w), frames(w))


def test_idm_motion_trains_end_to_end(image_data, tmp_path, helpers):
    expert, play = image_data
    out = tmp_path / "run"
    helpers.clam_train(expert, play, out, "model.idm_motion=true", "lam.steps=2", "policy.steps=2",
                       config=helpers.SMOKE_IMAGE)
    assert (out / "policy.pt").exists() and "idm_motion: true" in (out / "config.yaml").read_text()


def test_grounded_pixel_fdm_grounds_the_decoder_on_unlabelled_frames():
    """lam.fdm_input=action (configs/widowx-image-cpu.yaml): the U-Net reads the decoded action, so the
    reconstruction of *unlabelled* windows alone trains the decoder (with λ = 0 and only unlabelled windows in
    the FDM term). With the paper's latent-conditioned FDM that term never reaches the decoder."""
    from clamkit.trainer import conv, mlp
    from clamkit.trainer.clam import LAMLoss
    torch.manual_seed(0)
    Z, A, S = 4, 3, 16
    for fdm_input, reaches in (("action", True), ("latent", False)):
        idm = conv.IDM((3, S, S), Z, [8], [4, 8], motion=True)
        fdm = conv.FDM((3, S, S), A if fdm_input == "action" else Z, [8], [4, 8], size=8)
        dec = mlp.ActionDecoder(Z, A, [8])
        wu, wl, al = torch.rand(4, 3, 3, S, S), torch.rand(4, 3, 3, S, S), torch.rand(4, A) * 2 - 1
        LAMLoss(idm, fdm, dec, 0.0, fdm_on_labelled=False, fdm_input=fdm_input)(wu, wl, al)[0].backward()
        grad = max(p.grad.abs().max().item() if p.grad is not None else 0.0 for p in dec.parameters())
        assert (grad > 1e-6) == reaches, (fdm_input, grad)


def test_the_cpu_pixel_recipe_trains_with_the_grounded_fdm(image_data, tmp_path, helpers):
    from pathlib import Path

    from clamkit.config import load_config
    from clamkit.trainer.config import TrainConfig
    cfg, _ = load_config(TrainConfig, str(Path(helpers.SMOKE_IMAGE).with_name("widowx-image-cpu.yaml")))
    assert cfg.lam.fdm_input == "action"
    expert, play = image_data
    out = tmp_path / "run"
    helpers.clam_train(expert, play, out, "lam.fdm_input=action", "lam.steps=4", "policy.steps=4",
                       config=helpers.SMOKE_IMAGE)
    assert "fdm_input: action" in (out / "config.yaml").read_text()
    policy, _ = load_policy(out)
    obs = torch.from_numpy(sample_observations(out, 2)["image"])
    assert policy(obs).shape == (2, 2)
