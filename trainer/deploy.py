"""The deployable policy: raw observation in -> action in robot units out. What clam-export exports.

    policy, meta = load_policy("runs/reach")          # a RUN dir or RUN/policy.pt
    policy.input_names                                 # e.g. ["state"] or ["image"]
    action = policy(torch.from_numpy(state))           # (B, D) float32 -> (B, A) float32 in bounds
    obs = sample_observations("runs/reach", 8)         # {"state": (8, D)} recorded frames, for parity

Everything a robot needs lives inside forward, so the exported ONNX graph is the whole policy:
  image: uint8 (B, H, W, 3) -> float (B, 3, S, S) in [0, 1] (resize to S when the model was trained
         at another size); state: float32 (B, D) -> (x - mean) / std with the training statistics
  -> policy network -> [latent algorithms: action decoder d(z)] -> tanh output in [-1, 1]
  -> low + (a + 1) / 2 * (high - low): robot units, inside the action bounds.
Only ops every exporter handles (conv, linear, leaky_relu, tanh, interpolate, permute, flatten).

The trainer builds the very same module at the start of training and trains its `.policy` and
`.decoder` in place, and preprocesses every training batch with its `.prep`: what was trained is
what is exported.

policy.pt (torch.save of plain types and tensors, loadable with weights_only=True):
  {"format": "clamkit-policy", "version": 1, "arch": {...}, "state_dict": {...},
   "meta": {"observation", "action", "fps", "la_dim", "algo", "provenance"},
   "samples": {key: tensor (n, *shape)},
   "sha256": content hash of all the above (trainer/integrity.py), checked on load}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from clamkit.errors import UserError
from clamkit.fileio import write_atomic
from clamkit.trainer import conv, mlp
from clamkit.trainer.integrity import seal, verify

FORMAT = "clamkit-policy"
VERSION = 1
POLICY_NAME = "policy.pt"


def family(key: str):
    """The model family for an observation key: state -> MLPs (mlp.py), image -> CNNs (conv.py)."""
    return {"state": mlp, "image": conv}[key]


class StatePreprocess(nn.Module):
    """float (..., D) -> (x - mean) / std, with the dataset statistics (std already floored)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


class ImagePreprocess(nn.Module):
    """uint8 (..., H, W, 3) -> float (..., 3, S, S) in [0, 1]; bilinear resize when (H, W) != (S, S)."""

    def __init__(self, in_hw: tuple[int, int], size: int):
        super().__init__()
        self.in_hw, self.size = tuple(in_hw), int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0  # (N, H, W, 3) -> (N, 3, H, W)
        if self.in_hw != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)  # (N, 3, S, S)
        return x.reshape(*lead, 3, self.size, self.size)


class DeployPolicy(nn.Module):
    """a = d(π(o)) (latent algorithms) or a = π(o) (BC, VPT), raw observations in, robot units out.

    `arch` (a plain dict, stored in policy.pt) says how to rebuild it:
      key "state"|"image", in_shape (raw per-step shape), image_size, net (family kwargs),
      policy_out (la_dim or action dim), squash (policy ends in tanh), decoder ({la_dim, hidden} or None),
      action_dim.
    """

    def __init__(self, arch: dict):
        super().__init__()
        self.arch = arch
        key = arch["key"]
        self.input_names: list[str] = [key]
        if key == "state":
            self.prep = StatePreprocess(arch["in_shape"][0])
            model_shape = tuple(arch["in_shape"])  # (D,)
        else:
            self.prep = ImagePreprocess(arch["in_shape"][:2], arch["image_size"])
            model_shape = (3, arch["image_size"], arch["image_size"])  # (3, S, S)
        self.model_shape = model_shape
        self.policy = family(key).Policy(model_shape, arch["policy_out"], squash=arch["squash"], **arch["net"])
        dec = arch.get("decoder")
        self.decoder = mlp.ActionDecoder(dec["la_dim"], arch["action_dim"], dec["hidden"]) if dec else None
        self.register_buffer("low", torch.full((arch["action_dim"],), -1.0))
        self.register_buffer("high", torch.full((arch["action_dim"],), 1.0))

    def normalized_action(self, o: torch.Tensor) -> torch.Tensor:
        """Preprocessed observation (B, *model_shape) -> action in [-1, 1] (B, A)."""
        y = self.policy(o)  # (B, Z) or (B, A)
        return self.decoder(y) if self.decoder is not None else y

    def unnormalize(self, a: torch.Tensor) -> torch.Tensor:
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)  # [-1, 1] -> robot units

    def normalize(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.low) / (self.high - self.low) * 2.0 - 1.0  # robot units -> [-1, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw observations in `input_names` order, i.e. policy(*inputs); one input today (the image or the
        state). A named parameter, not *inputs: torch.onnx.export(dynamo=True) rejects varargs with a
        dynamic batch axis. A future image+state policy adds a second named parameter."""
        return self.unnormalize(self.normalized_action(self.prep(x)))  # (B, A) float32


# ----------------------------------------------------------------------------- file I/O


def save_policy(path: str | Path, policy: DeployPolicy, meta: dict, samples: dict[str, np.ndarray]) -> Path:
    """Write policy.pt atomically (clamkit.fileio)."""
    path = Path(path)
    blob = {"format": FORMAT, "version": VERSION, "arch": policy.arch,
            "state_dict": {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()},
            "meta": meta, "samples": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in samples.items()}}
    blob = seal(blob)  # verified on load: a flipped byte is an error, not a different policy
    return write_atomic(path, lambda f: torch.save(blob, f))


def _file(path: str | Path) -> Path:
    path = Path(path)
    return path / POLICY_NAME if path.is_dir() else path


def _read(path: str | Path) -> dict:
    path = _file(path)
    if not path.is_file():
        hint = " (training has not finished; resume it with --resume)" if (path.parent / "checkpoint.pt").is_file() else ""
        raise UserError(f"{path}: no trained policy here{hint}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise UserError(f"{path}: unreadable policy file ({type(e).__name__}: {e})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserError(f"{path}: not a clamkit policy file")
    if blob.get("version") != VERSION:
        raise UserError(f"{path}: policy format version {blob.get('version')!r} is not supported (this clamkit reads {VERSION})")
    verify(blob, path, hint="re-run clam-train or restore the file")
    return blob


def load_policy(path: str | Path) -> tuple[DeployPolicy, dict]:
    """Rebuild the DeployPolicy from RUN/ or RUN/policy.pt, in eval mode on the CPU.

    Returns (policy, meta) with meta keys: observation (ObservationSpec.to_json() of the inputs),
    action (ActionSpec.to_json()), fps, la_dim, algo, provenance {config, dataset_fingerprint, code_version}.
    """
    blob = _read(path)
    try:
        policy = DeployPolicy(blob["arch"])
        policy.load_state_dict(blob["state_dict"])
        meta = dict(blob["meta"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:  # RuntimeError: load_state_dict's mismatch
        raise UserError(f"{_file(path)}: malformed policy file ({type(e).__name__}: {' '.join(str(e).split())[:300]}); "
                        "re-run clam-train or restore the file") from None
    policy.eval()
    return policy, meta


def sample_observations(path: str | Path, n: int) -> dict[str, np.ndarray]:
    """Up to n recorded training observations per input key (raw dtype), e.g. for an export parity check."""
    blob = _read(path)
    try:
        return {k: v[:n].numpy() for k, v in blob["samples"].items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{_file(path)}: malformed policy file (samples: {type(e).__name__}: {e})") from None
