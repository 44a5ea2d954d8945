"""State models: MLPs over normalised state vectors (DESIGN §3: [1024, 1024], LeakyReLU(0.2)).

Read leaf to root: MLP -> ActionDecoder -> IDM -> FDM -> Policy. The pixel family (conv.py)
exposes the same IDM / FDM / Policy signatures, so the algorithms never branch on the modality.

Shapes: B batch, K frames in a window (3 for the IDM: o_{t-1}, o_t, o_{t+1}), D state dim,
Z latent dim (la_dim), A action dim. Observations arrive already normalised by the DeployPolicy's
preprocessor (deploy.py); actions live in [-1, 1] (the action bounds, rescaled).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class MLP(nn.Sequential):
    """Linear -> LeakyReLU(0.2) for each hidden width, then a final Linear."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int):
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.LeakyReLU(0.2)]
            d = h
        layers.append(nn.Linear(d, out_dim))
        super().__init__(*layers)


class ActionDecoder(nn.Module):
    """â_t = d(z_t): latent only, Tanh output in [-1, 1] (the action bounds, rescaled). Shared by both families."""

    def __init__(self, la_dim: int, action_dim: int, hidden: list[int]):
        super().__init__()
        self.net = MLP(la_dim, hidden, action_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z))  # (B, Z) -> (B, A)


class IDM(nn.Module):
    """Inverse dynamics z_t = f(o_{t-1}, o_t, o_{t+1}). With squash=True it is a supervised IDM
    predicting a_t in [-1, 1] (the disagreement reference and VPT's labeller).

    The window is re-expressed as (o_t, Δ_t, Δ_{t-1}), Δ_t = o_{t+1} - o_t, with each Δ scaled by
    `delta_scale` (1 / RMS of the one-step change, set from the data). A hand that moves 1 cm per
    step is a tiny difference of two O(1) normalised positions; an MLP fed raw windows has to
    learn that subtraction through an ill-conditioned problem and, measured on MetaWorld play, did
    not within 2000 steps (held-out R² ≈ 0.2 where a linear fit of the same window gets 0.78)."""

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int, hidden: list[int], squash: bool = False):
        super().__init__()
        (D,) = obs_shape
        self.squash = squash
        self.register_buffer("delta_scale", torch.ones(D))
        self.net = MLP(3 * D, hidden, out_dim)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        now = w[:, 1]  # (B, 3, D) -> (B, D)
        d_next = (w[:, 2] - now) * self.delta_scale  # (B, D) scaled Δ_t
        d_prev = (now - w[:, 0]) * self.delta_scale  # (B, D) scaled Δ_{t-1}
        y = self.net(torch.cat([now, d_next, d_prev], 1))  # (B, 3D) -> (B, out)
        return torch.tanh(y) if self.squash else y


class FDM(nn.Module):
    """Forward dynamics ô_{t+1} = g(o_{t-1}, o_t, z_t); it never sees o_{t+1}. Predicts the scaled
    change Δ_t from (o_t, Δ_{t-1}, z_t) and returns o_t + Δ_t. `error` is the training loss per
    sample, in scaled-Δ units so it is O(1) and not dwarfed by the decoder term."""

    def __init__(self, obs_shape: tuple[int, ...], la_dim: int, hidden: list[int]):
        super().__init__()
        (D,) = obs_shape
        self.register_buffer("delta_scale", torch.ones(D))
        self.net = MLP(2 * D + la_dim, hidden, D)

    def forward(self, ctx: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        now = ctx[:, 1]  # (B, 2, D) -> (B, D)
        d_prev = (now - ctx[:, 0]) * self.delta_scale  # (B, D)
        d = self.net(torch.cat([now, d_prev, z], 1))  # (B, 2D+Z) -> (B, D) scaled Δ_t
        return now + d / self.delta_scale  # (B, D): ô_{t+1}

    def error(self, ctx: torch.Tensor, z: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """Squared error of ô_{t+1} against o_{t+1} in scaled-Δ units, per sample: (B,)."""
        return ((self(ctx, z).float() - nxt.float()) * self.delta_scale).pow(2).mean(1)


class Policy(nn.Module):
    """π(o_t) -> z_t (latent policy) or, with squash=True, -> a_t in [-1, 1] (plain BC)."""

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int, hidden: list[int], squash: bool = False):
        super().__init__()
        (D,) = obs_shape
        self.squash = squash
        self.net = MLP(D, hidden, out_dim)

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        y = self.net(o)  # (B, D) -> (B, out)
        return torch.tanh(y) if self.squash else y
