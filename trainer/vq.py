"""`vq`: the discrete latent-action baseline, LAPO-style (Schmidt & Jiang, 2024): the latent is vector-quantised
and the LAM is trained without action grounding; the action decoder comes afterwards.

Stages:
  lam            IDM -> VQ bottleneck -> FDM, loss = MSE(ô_{t+1}, o_{t+1}) + VQ loss. No decoder term.
                 Kept at the last step (no label-free selection signal exists before a decoder); use
                 the same short lam.steps as CLAM.
  play_latents   the frozen IDM + VQ labels the labelled play windows with z_q.
  decoder        d(z_q) -> a_t on play, held-out early stopping (idm.eval_every / idm.select).
  relabel        the frozen IDM + VQ labels every unlabelled window.
  policy         latent BC π(o_t) -> z_q, then deploy a = d(π(o_t)), like CLAM.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from clamkit.trainer.common import Common, r2_score
from clamkit.trainer.engine import Stage
from clamkit.trainer.quantizer import VectorQuantizer


class VQLAMLoss(nn.Module):
    def __init__(self, idm: nn.Module, vq: VectorQuantizer, fdm: nn.Module):
        super().__init__()
        self.idm, self.vq, self.fdm = idm, vq, fdm

    def forward(self, w: torch.Tensor):
        z, vq_loss, info = self.vq(self.idm(w))  # (B, Z) quantised, straight-through
        fdm = self.fdm.error(w[:, :2], z, w[:, 2]).mean()  # ô_{t+1} vs o_{t+1}
        return fdm + vq_loss, fdm.detach(), vq_loss.detach(), info["perplexity"]


class VQ(Common):
    name = "vq"
    latent = True

    def __init__(self, cfg, data, run):
        super().__init__(cfg, data, run, policy_out=cfg.model.la_dim, squash=False)
        Z = cfg.model.la_dim
        self.idm = self.build("IDM", Z)
        self.vq = VectorQuantizer(cfg.vq.codes, Z, cfg.vq.beta).to(self.dev)
        self.fdm = self.build("FDM", Z)
        self.decoder, self.policy = self.deploy.decoder, self.deploy.policy
        self.modules.update(idm=self.idm, vq=self.vq, fdm=self.fdm)
        self.stages = self.build_stages()

    def build_stages(self) -> list[Stage]:
        cfg, d = self.cfg, self.data
        unl, lab = d.unl, d.lab
        # ---- ALGO LOGIC
        params = [*self.idm.parameters(), *self.vq.parameters(), *self.fdm.parameters()]
        self.lam_opt = self.adamw("lam", [{"params": params, "lr": cfg.optim.lr}])
        self.unl_sampler = self.sampler("lam/unlabelled", d.lam.window_ids(d.lam_train))
        self.lab_sampler = self.sampler("lam/labelled", lab.window_ids(d.lab_train))
        self.lam_loss = self.run.wrap(VQLAMLoss(self.idm, self.vq, self.fdm))
        return [
            Stage("lam", cfg.lam.steps, self.lam_step, self.lam_evaluate, cfg.lam.eval_every),
            Stage("play_latents", 0, end=self.play_latents),
            self.regression_stage(
                "decoder", self.decoder, x_fn=lambda ids: self.stage_data.play_latents[torch.from_numpy(ids)],
                y_fn=lambda ids: self.actions(lab, ids), train_ids=lab.window_ids(d.lab_train), val_ids=self.lab_val_ids,
                steps=cfg.vq.decoder_steps, eval_every=cfg.idm.eval_every,
                select=cfg.idm.select == "val" and self.has_lab_val, lr=cfg.optim.decoder_lr, probe=self.decoder_probe),
            Stage("relabel", 0, end=self.relabel),
            self.regression_stage(
                "policy", self.policy, x_fn=lambda ids: self.obs(unl, ids),
                y_fn=lambda ids: self.stage_data.relabels[torch.from_numpy(ids)], train_ids=unl.window_ids(d.unl_train),
                val_ids=self.unl_val_ids, steps=cfg.policy.steps, eval_every=cfg.policy.eval_every,
                select=cfg.policy.select == "val" and self.has_unl_val, lr=cfg.optim.lr, probe=self.policy_probe),
        ]

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        return self.vq.quantize(self.idm(w))  # (N, Z) codebook vectors

    def lam_step(self, i: int) -> dict:
        lab = self.data.lab
        w = self.augment(torch.cat([self.windows(self.data.lam, self.unl_sampler()), self.windows(lab, self.lab_sampler())]))
        with self.run.autocast():
            loss, fdm, vq, perplexity = self.lam_loss(w)
        self.update(self.lam_opt, loss, i, self.cfg.lam.steps)
        return {"losses/lam_total": loss.detach(), "losses/lam_fdm": fdm, "losses/lam_vq": vq, "charts/vq_perplexity": perplexity}

    def lam_evaluate(self, i: int) -> dict:
        unl = self.data.unl

        def err(ids):
            w = self.windows(unl, ids)
            return self.fdm.error(w[:, :2], self.encode(w), w[:, 2])[:, None]

        return {"probe/fdm_mse": self.batched(err, self.probe_ids).mean().item()}

    def play_latents(self) -> dict:
        self.stage_data.play_latents = self.relabel_all(self.encode, self.data.lab)
        return {}

    def decoder_probe(self) -> dict:
        lab = self.data.lab
        pred = self.batched(lambda ids: self.decoder(self.stage_data.play_latents[torch.from_numpy(ids)]), self.lab_val_ids)
        return {"probe/decoder_r2": r2_score(pred, self.actions(lab, self.lab_val_ids))}

    def relabel(self) -> dict:
        self.stage_data.relabels = self.relabel_all(self.encode)
        pred = self.batched(lambda b: self.decoder(self.stage_data.relabels[torch.from_numpy(b)]), self.probe_ids)
        return self.relabel_probe(pred, per_dim=True)
