"""Stand-ins for the trainer's deploy interface, and a fake TensorRT + CUDA runtime.

The stand-in loader has the exact shape of clamkit.trainer.deploy (load_policy, sample_observations)
and is what `clamkit.pipeline.policy_loader` returns in these tests, so `clam-export`
runs its real code path. Stand-in runs are small dirs: policy.pt (kind, kwargs, state_dict,
meta) + samples.npz (recorded observations).

The fake `tensorrt` and CUDA runtime are tests/fake_trt.py, shared with the runtime's TrtBackend tests (the
`fake_trt` fixture is in tests/conftest.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

STATE_DIM, IMG_STATE_DIM, ACTION_DIM, LA_DIM = 39, 5, 4, 8
IMG_HW = (32, 32)


# ----------------------------------------------------------------------------- stand-in policies


class StandInStatePolicy(nn.Module):
    """a = d(pi(normalise(state))): MLP latent policy + MLP decoder, tanh scaled to the action bounds."""

    input_names = ["state"]

    def __init__(self, state_dim=STATE_DIM, action_dim=ACTION_DIM, la_dim=LA_DIM, hidden=1024):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(state_dim))
        self.register_buffer("obs_std", torch.ones(state_dim))
        self.register_buffer("act_low", -torch.ones(action_dim))
        self.register_buffer("act_high", torch.ones(action_dim))
        self.pi = nn.Sequential(nn.Linear(state_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                nn.LeakyReLU(0.2), nn.Linear(hidden, la_dim))
        self.dec = nn.Sequential(nn.Linear(la_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, action_dim), nn.Tanh())

    def forward(self, state):
        z = self.pi((state - self.obs_mean) / self.obs_std)  # (B, la_dim)
        u = self.dec(z)  # (B, A) in [-1, 1]
        return self.act_low + (u + 1) * 0.5 * (self.act_high - self.act_low)


class StandInImagePolicy(nn.Module):
    """uint8 HWC frame + state -> action; preprocessing (cast, /255, resize, normalise) inside."""

    input_names = ["image", "state"]

    def __init__(self, state_dim=IMG_STATE_DIM, action_dim=ACTION_DIM, la_dim=LA_DIM, size=24):
        super().__init__()
        self.size = size
        self.register_buffer("img_mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
        self.register_buffer("img_std", torch.tensor([0.25, 0.2, 0.3]).view(1, 3, 1, 1))
        self.register_buffer("obs_mean", torch.zeros(state_dim))
        self.register_buffer("obs_std", torch.ones(state_dim))
        self.conv = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 4, 2, 1),
                                  nn.LeakyReLU(0.2), nn.Flatten())
        self.pi = nn.Sequential(nn.Linear(32 * (size // 4) ** 2 + state_dim, 128), nn.LeakyReLU(0.2), nn.Linear(128, la_dim))
        self.dec = nn.Sequential(nn.Linear(la_dim, 64), nn.LeakyReLU(0.2), nn.Linear(64, action_dim), nn.Tanh())

    def forward(self, image, state):
        x = image.float().permute(0, 3, 1, 2) / 255.0  # (B, 3, H, W); cast first (TensorRT keeps uint8 to I/O + Cast)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)  # (B, 3, s, s)
        x = (x - self.img_mean) / self.img_std
        h = torch.cat([self.conv(x), (state - self.obs_mean) / self.obs_std], -1)  # (B, F + D)
        return self.dec(self.pi(h))


KINDS = {"state": StandInStatePolicy, "image": StandInImagePolicy}


def _meta(kind: str) -> dict:
    obs = {"state": {"shape": [STATE_DIM], "dtype": "float32"}} if kind == "state" else {
        "image": {"shape": [*IMG_HW, 3], "dtype": "uint8"}, "state": {"shape": [IMG_STATE_DIM], "dtype": "float32"}}
    return {"observation": obs,
            "action": {"dim": ACTION_DIM, "low": [-1.0, -1.0, -1.0, 0.0], "high": [1.0, 1.0, 1.0, 1.0],
                       "semantics": "metaworld_xyz+gripper"},
            "fps": 12.5, "la_dim": LA_DIM, "algo": "clam",
            "provenance": {"config": {"stand_in": kind}, "dataset_fingerprint": "deadbeef", "code_version": "test"}}


def make_run(run: Path, kind: str, n_samples: int = 5, seed: int = 0) -> Path:
    """A stand-in training run: random weights, dataset-like normalisation stats, recorded observations."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = KINDS[kind]()
    meta = _meta(kind)
    low, high = meta["action"]["low"], meta["action"]["high"]
    if kind == "state":
        policy.obs_mean.copy_(torch.from_numpy(rng.normal(0, 0.5, STATE_DIM).astype(np.float32)))
        policy.obs_std.copy_(torch.from_numpy(rng.uniform(0.05, 0.5, STATE_DIM).astype(np.float32)))
        policy.act_low.copy_(torch.tensor(low))
        policy.act_high.copy_(torch.tensor(high))
        walk = np.cumsum(rng.normal(0, 0.05, (n_samples, STATE_DIM)), 0)
        samples = {"state": (policy.obs_mean.numpy() + walk).astype(np.float32)}
    else:
        yy, xx = np.mgrid[0 : IMG_HW[0], 0 : IMG_HW[1]]
        frames = [np.stack([(xx * 7 + t * 3) % 256, (yy * 5 + t) % 256, (xx + yy + 40 * t) % 256], -1) for t in range(n_samples)]
        samples = {"image": np.asarray(frames, dtype=np.uint8),
                   "state": rng.normal(0, 1, (n_samples, IMG_STATE_DIM)).astype(np.float32)}
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": kind, "state_dict": policy.state_dict(), "meta": meta}, run / "policy.pt")
    np.savez(run / "samples.npz", **samples)
    return run


class StandInLoader:
    """Same interface as clamkit.trainer.deploy: load_policy(path) and sample_observations(path, n)."""

    @staticmethod
    def _dir(path) -> Path:
        path = Path(path)
        return path.parent if path.is_file() else path

    def load_policy(self, path):
        ckpt = torch.load(self._dir(path) / "policy.pt", weights_only=False)
        policy = KINDS[ckpt["kind"]]()
        policy.load_state_dict(ckpt["state_dict"])
        return policy.eval(), ckpt["meta"]

    def sample_observations(self, path, n):
        with np.load(self._dir(path) / "samples.npz") as z:
            return {k: z[k][:n] for k in z.files}


@pytest.fixture
def standin(monkeypatch):
    """Make clam-export use the stand-in loader (as if clamkit.trainer.deploy were it)."""
    import clamkit.pipeline as pipeline

    loader = StandInLoader()
    monkeypatch.setattr(pipeline, "policy_loader", lambda: loader)
    return loader


@pytest.fixture(scope="session")
def state_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "state", "state")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "image", "image")


@pytest.fixture(scope="session")
def state_bundle(tmp_path_factory, state_run):
    """A valid state bundle (legacy exporter: fastest), shared read-only by the TensorRT tests (they copy it)."""
    from clamkit.export.exporter import ExportOptions, export_run

    out = tmp_path_factory.mktemp("bundles") / "state"
    export_run(state_run, out, ExportOptions(exporter="legacy"), loader=StandInLoader())
    return out


# ----------------------------------------------------------------------------- fake TensorRT


@pytest.fixture
def no_trt(monkeypatch):
    """TensorRT absent, even on a machine that has it."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
