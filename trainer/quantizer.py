"""Vector quantiser for the discrete-latent baseline `vq` (vq.py, LAPO-style).

The IDM's continuous output z_e (B, Z) is snapped to the nearest of `codes` codebook vectors;
gradients pass straight through to the IDM (z_e + (z_q - z_e).detach()). Loss = codebook term
||sg[z_e] - e||² + beta * commitment ||z_e - sg[e]||² (van den Oord et al., 2017). Codes nobody
used in a batch are not reset: the bottleneck is small and short training keeps most alive; the
`vq/perplexity` metric says how many are in use.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class VectorQuantizer(nn.Module):
    def __init__(self, codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.beta = beta
        self.codebook = nn.Embedding(codes, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / codes, 1.0 / codes)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(B, Z) -> z_q (B, Z) with straight-through gradient, the VQ loss, and {perplexity}."""
        e = self.codebook.weight  # (K, Z)
        d = (z_e.pow(2).sum(1, keepdim=True) - 2 * z_e @ e.t() + e.pow(2).sum(1)[None])  # (B, K) squared distances
        idx = d.argmin(1)  # (B,)
        z_q = e[idx]  # (B, Z)
        loss = F.mse_loss(z_q, z_e.detach()) + self.beta * F.mse_loss(z_e, z_q.detach())
        probs = F.one_hot(idx, e.shape[0]).float().mean(0)  # (K,) code usage in this batch
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return z_e + (z_q - z_e).detach(), loss, {"perplexity": perplexity.detach()}

    @torch.no_grad()
    def quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """Nearest codebook vectors, no gradient (relabelling)."""
        e = self.codebook.weight
        return e[torch.cdist(z_e, e).argmin(1)]  # (B, Z)
