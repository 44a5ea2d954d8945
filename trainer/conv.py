"""Pixel models for 64x64 or 84x84 RGB: a CNN IDM, a U-Net FDM, and a CNN latent policy (DESIGN §3).

Read leaf to root: ConvEncoder -> Down/Up -> IDM -> FDM (U-Net) -> Policy. Same constructor and
forward signatures as the state family (mlp.py), plus `channels` (one width per stride-2 stage).

Shapes: B batch, K frames, S image side after preprocessing (deploy.ImagePreprocess turns raw
uint8 (H, W, 3) into float (3, S, S) in [0, 1]), C channels, Z latent dim, A action dim.
Only the policy is exported (deploy.py): it uses Conv2d, LeakyReLU, flatten and Linear, which every
ONNX exporter handles; the U-Net is training-only and may use interpolate freely.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from clamkit.errors import ConfigError
from clamkit.trainer.mlp import MLP


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ's augmentation: each sample padded by `pad` edge pixels and cropped back at a random offset, the same
    offset for all of its frames. x (B, ..., C, S, S) float -> same shape. Draws from torch's global RNG, which
    checkpoints carry, so a resumed run draws the same shifts."""
    B, S = x.shape[0], x.shape[-1]
    flat = F.pad(x.reshape(B, -1, S, S), (pad,) * 4, mode="replicate")  # (B, K*C, S+2p, S+2p)
    dx, dy = torch.randint(0, 2 * pad + 1, (2, B)).tolist()
    out = torch.stack([flat[b, :, dy[b]:dy[b] + S, dx[b]:dx[b] + S] for b in range(B)])  # (B, K*C, S, S)
    return out.reshape(x.shape)


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convs with LeakyReLU(0.2), one per width in `channels`, then flatten."""

    def __init__(self, in_ch: int, channels: list[int], size: int):
        super().__init__()
        layers, c = [], in_ch
        for w in channels:
            layers += [nn.Conv2d(c, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = w
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.out_dim = int(self.net(torch.zeros(1, in_ch, size, size)).numel())  # C_last * s * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)  # (B, C, S, S) -> (B, C_last * s * s)


class Down(nn.Module):
    """Halve the resolution: 3x3 stride-2 conv, 3x3 conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.2))

    def forward(self, x):
        return self.net(x)  # (B, cin, s, s) -> (B, cout, ceil(s/2), ceil(s/2))


class Up(nn.Module):
    """Upsample to the skip's size (handles odd sides such as 21 at 84x84), concat the skip, two 3x3 convs."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin + cskip, cout, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.2))

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")  # (B, cin, s_skip, s_skip)
        return self.net(torch.cat([x, skip], 1))  # (B, cout, s_skip, s_skip)


class IDM(nn.Module):
    """z_t = f(o_{t-1}, o_t, o_{t+1}): the K frames stacked on channels, CNN, MLP head.
    squash=True: a supervised IDM predicting a_t in [-1, 1]. motion=True: it reads o_t and the two frame
    differences instead (model.idm_motion)."""

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int, hidden: list[int], channels: list[int],
                 squash: bool = False, motion: bool = False):
        super().__init__()
        c, s, _ = obs_shape  # (3, S, S)
        self.squash, self.motion = squash, motion
        self.enc = ConvEncoder(3 * c, channels, s)
        self.head = MLP(self.enc.out_dim, hidden, out_dim)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.motion:  # o_t, o_t - o_{t-1}, o_{t+1} - o_t
            w = torch.cat([w[:, 1:2], w[:, 1:] - w[:, :-1]], 1)
        y = self.head(self.enc(w.flatten(1, 2)))  # (B, K, 3, S, S) -> (B, K*3, S, S) -> (B, out)
        return torch.tanh(y) if self.squash else y


class FDM(nn.Module):
    """U-Net ô_{t+1} = g(o_{t-1}, o_t, z_t), z injected at the input (as constant planes) and at the
    bottleneck; sigmoid output in [0, 1]. It never sees o_{t+1}.

    size < S predicts at a lower resolution: context and target are average-pooled to size x size first.
    The full-resolution levels are most of a U-Net's cost (64 -> 32 made a CPU LAM step ~4.7x faster), and
    the arm's motion still shows at 32x32 (model.fdm_size, configs/widowx-image-cpu.yaml)."""

    def __init__(self, obs_shape: tuple[int, ...], la_dim: int, hidden: list[int], channels: list[int],
                 size: int = 0):
        super().__init__()
        c, S, _ = obs_shape
        if size and S % size:
            raise ConfigError(f"config key 'model.fdm_size': {size} does not divide the image side {S}")
        self.pool = S // size if size else 1
        self.stem = nn.Sequential(nn.Conv2d(2 * c + la_dim, channels[0], 3, padding=1), nn.LeakyReLU(0.2))
        widths = [channels[0], *channels]
        self.downs = nn.ModuleList(Down(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.mid = nn.Sequential(nn.Conv2d(widths[-1] + la_dim, widths[-1], 3, padding=1), nn.LeakyReLU(0.2))
        self.ups = nn.ModuleList(Up(b, a, a) for a, b in reversed(list(zip(widths[:-1], widths[1:]))))
        self.out = nn.Conv2d(channels[0], c, 1)

    def shrink(self, x: torch.Tensor) -> torch.Tensor:
        """(..., c, S, S) -> (..., c, S/pool, S/pool), the side the FDM predicts at."""
        if self.pool == 1:
            return x
        return F.avg_pool2d(x.flatten(0, -4), self.pool).unflatten(0, x.shape[:-3])

    def forward(self, ctx: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        ctx = self.shrink(ctx)
        B, _, c, S, _ = ctx.shape
        planes = z[:, :, None, None]  # (B, Z, 1, 1)
        h = self.stem(torch.cat([ctx.flatten(1, 2), planes.expand(-1, -1, S, S)], 1))  # (B, 2c+Z, S, S) -> (B, C0, S, S)
        skips = [h]
        for down in self.downs:
            h = down(h)
            skips.append(h)
        skips.pop()  # the bottleneck itself is not a skip
        s = h.shape[-1]
        h = self.mid(torch.cat([h, planes.expand(-1, -1, s, s)], 1))  # (B, C_last+Z, s, s) -> (B, C_last, s, s)
        for up in self.ups:
            h = up(h, skips.pop())
        return torch.sigmoid(self.out(h))  # (B, 3, S/pool, S/pool) in [0, 1]

    def error(self, ctx: torch.Tensor, z: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """Per-sample squared pixel error of ô_{t+1} against o_{t+1}: (B,)."""
        return (self(ctx, z).float() - self.shrink(nxt).float()).pow(2).flatten(1).mean(1)


class Policy(nn.Module):
    """π(o_t) -> z_t (latent policy), or with squash=True -> a_t in [-1, 1] (plain BC)."""

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int, hidden: list[int], channels: list[int],
                 squash: bool = False):
        super().__init__()
        c, s, _ = obs_shape
        self.squash = squash
        self.enc = ConvEncoder(c, channels, s)
        self.head = MLP(self.enc.out_dim, hidden, out_dim)

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        y = self.head(self.enc(o))  # (B, 3, S, S) -> (B, out)
        return torch.tanh(y) if self.squash else y
