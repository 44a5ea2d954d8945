"""CLAM: Continuous Latent Action Models (Liang et al., arXiv 2505.04999), DESIGN §3.

Stages (one Stage each, run by engine.run_stages):
  idm      a small supervised IDM on the labelled play windows (o_{t-1}, o_t, o_{t+1}) -> a_t, held-out
           early stopping. It is only a reference for model selection (lam.select=disagreement).
  lam      LAM + joint grounding: z_t = f(o_{t-1}, o_t, o_{t+1}), ô_{t+1} = g(o_{t-1}, o_t, z_t),
           â_t = d(z_t); loss = MSE(ô_{t+1}, o_{t+1}) + λ MSE(d(z_t), a_t) with the decoder term on a
           labelled play batch and its gradient flowing into the IDM (no stop-gradient: without it
           the prototype's drawer-open fell from 0.68 to 0.00 success).
           Every lam.eval_every steps: probe/decoder_r2 and _mse on held-out play; probe/disagreement,
           the MSE between CLAM's decoded relabels d(f(w)) and the supervised IDM's on a fixed
           subsample of unlabelled windows, and — when the unlabelled recording secretly has actions —
           probe/relabel_mse against them (diagnostic only). Longer LAM training made CLAM worse and
           the FDM loss cannot tell when, so with lam.select=disagreement the LAM weights with the
           lowest disagreement are kept: a label-free rule that picked the best checkpoint in the prototype.
  relabel  the frozen IDM labels every unlabelled window with z_t.
  policy   latent BC: π(o_t) -> z_t by MSE, held-out selection on unlabelled episodes.
Deploy: a_t = d(π(o_t)) (deploy.DeployPolicy with the trained policy and decoder).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from clamkit.trainer.common import Common, r2_score
from clamkit.trainer.engine import Stage


class LAMLoss(nn.Module):
    """Stage-1 objective as one module (so DDP sees one forward per backward).

    fdm_input "latent" (the paper): ô_{t+1} = g(o_{t-1}, o_t, z_t). "action": the forward model reads the
    decoded action instead, g(o_{t-1}, o_t, d(z_t)), and the true a_t on labelled windows — one dynamics model
    grounded by the labels, so on every unlabelled window d(z_t) must be the action that explains the
    transition under it. The grounding then reaches wherever the pool goes, not only where play went."""

    def __init__(self, idm: nn.Module, fdm: nn.Module, decoder: nn.Module, weight: float, fdm_on_labelled: bool,
                 fdm_input: str = "latent"):
        super().__init__()
        self.idm, self.fdm, self.decoder = idm, fdm, decoder
        self.weight, self.fdm_on_labelled, self.fdm_input = weight, fdm_on_labelled, fdm_input

    def forward(self, wu: torch.Tensor, wl: torch.Tensor, al: torch.Tensor):
        B = wu.shape[0]
        w = torch.cat([wu, wl])  # (Bu+Bl, 3, *obs): unlabelled then labelled windows
        z = self.idm(w)  # (Bu+Bl, Z)
        zl = z[B:]  # (Bl, Z) latents of the labelled windows
        al_hat = self.decoder(zl).float()  # (Bl, A)
        if self.fdm_input == "action":
            cond = torch.cat([self.decoder(z[:B]).float(), al])  # (Bu+Bl, A): decoded, then true actions
        else:
            cond = z
        if not self.fdm_on_labelled:
            w, cond = w[:B], cond[:B]
        fdm = self.fdm.error(w[:, :2], cond, w[:, 2]).mean()  # ô_{t+1} = g(o_{t-1}, o_t, ·) vs o_{t+1}
        dec = F.mse_loss(al_hat, al)  # gradient flows into the IDM: no detach
        return fdm + self.weight * dec, fdm.detach(), dec.detach()


def latent_spread(z_unl: torch.Tensor, z_play: torch.Tensor) -> float:
    """How far the unlabelled (expert) latents lie from the labelled play latents the decoder was fit on:
    mean distance to the play centre, in play-std units, over the play latents' own mean distance.
    1 = the decoder sees nothing new; 2 = expert latents twice as far out (it must extrapolate). Label-free."""
    mu, sd = z_play.mean(0), z_play.std(0).clamp_min(1e-6)
    dist = lambda z: ((z - mu) / sd).norm(dim=1).mean()  # noqa: E731
    return float(dist(z_unl) / dist(z_play).clamp_min(1e-6))


class DecodedPolicy(nn.Module):
    """o -> d(π(o)) with the decoder frozen: only π is registered, so only π is optimised and saved."""

    def __init__(self, policy: nn.Module, decoder: nn.Module):
        super().__init__()
        self.policy = policy
        object.__setattr__(self, "_decoder", decoder)  # not a submodule: outside the optimiser and DDP

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        return self._decoder(self.policy(o))  # (B, D) -> (B, Z) -> (B, A)


class CLAM(Common):
    name = "clam"
    latent = True

    def __init__(self, cfg, data, run):
        super().__init__(cfg, data, run, policy_out=cfg.model.la_dim, squash=False)
        Z, A = cfg.model.la_dim, data.action.dim
        self.idm = self.build("IDM", Z)
        self.fdm = self.build("FDM", A if cfg.lam.fdm_input == "action" else Z)
        self.decoder, self.policy = self.deploy.decoder, self.deploy.policy
        self.modules.update(idm=self.idm, fdm=self.fdm)
        self.use_sidm = cfg.lam.select == "disagreement"
        if self.use_sidm:
            self.sidm = self.build("IDM", A, squash=True)
            self.modules["sidm"] = self.sidm
        self.stages = self.build_stages()

    def build_stages(self) -> list[Stage]:
        cfg, d = self.cfg, self.data
        unl, lab = d.unl, d.lab
        stages = []
        # ---- ALGO LOGIC
        if self.use_sidm:
            stages.append(self.regression_stage(
                "idm", self.sidm, x_fn=lambda ids: self.windows(lab, ids), y_fn=lambda ids: self.actions(lab, ids),
                train_ids=lab.window_ids(d.lab_train), val_ids=self.lab_val_ids, steps=cfg.idm.steps,
                eval_every=cfg.idm.eval_every, select=cfg.idm.select == "val" and self.has_lab_val, lr=cfg.optim.lr,
                after=self.sidm_reference))

        self.lam_opt = self.adamw("lam", [{"params": list(self.idm.parameters()) + list(self.fdm.parameters()), "lr": cfg.optim.lr},
                                          {"params": self.decoder.parameters(), "lr": cfg.optim.decoder_lr}])
        self.unl_sampler = self.sampler("lam/unlabelled", d.lam.window_ids(d.lam_train))
        self.lab_sampler = self.sampler("lam/labelled", lab.window_ids(d.lab_train))
        self.lam_loss = self.run.wrap(LAMLoss(self.idm, self.fdm, self.decoder, cfg.lam.weight, cfg.lam.fdm_on_labelled,
                                          cfg.lam.fdm_input))
        stages.append(Stage("lam", cfg.lam.steps, self.lam_step, self.lam_evaluate, cfg.lam.eval_every, self.lam_end))

        stages.append(Stage("relabel", 0, end=self.relabel))

        if cfg.policy.space == "action":  # match what is deployed, d(π(o)), to the decoded relabel d(z)
            model, target = DecodedPolicy(self.policy, self.decoder), (lambda: self.stage_data.decoded)
        else:
            model, target = self.policy, (lambda: self.stage_data.relabels)
        stages.append(self.regression_stage(
            "policy", model, x_fn=lambda ids: self.obs(unl, ids), y_fn=lambda ids: target()[torch.from_numpy(ids)],
            train_ids=unl.window_ids(d.unl_train), val_ids=self.unl_val_ids, steps=cfg.policy.steps,
            eval_every=cfg.policy.eval_every, select=cfg.policy.select == "val" and self.has_unl_val, lr=cfg.optim.lr,
            probe=self.policy_probe))
        return stages

    def sidm_reference(self) -> dict:
        """After the supervised IDM: its labels for the probe windows are the disagreement reference."""
        unl = self.data.unl
        ref = self.batched(lambda ids: self.sidm(self.windows(unl, ids)), self.probe_ids)
        self.stage_data.sidm_probe = ref
        return self.relabel_probe(ref, "probe/sidm_relabel", per_dim=True)

    def lam_step(self, i: int) -> dict:
        lab = self.data.lab
        u, l = self.unl_sampler(), self.lab_sampler()
        wu, wl, al = self.augment(self.windows(self.data.lam, u)), self.augment(self.windows(lab, l)), self.actions(lab, l)
        with self.run.autocast():
            loss, fdm, dec = self.lam_loss(wu, wl, al)
        self.update(self.lam_opt, loss, i, self.cfg.lam.steps)
        return {"losses/lam_total": loss.detach(), "losses/lam_fdm": fdm, "losses/lam_decoder": dec}

    @torch.no_grad()
    def lam_evaluate(self, i: int) -> dict:
        """Probes, all label-free but probe/relabel_* (hidden actions, diagnostic only); lam.select names the one
        whose minimum picks the kept LAM checkpoint."""
        unl, lab, lam = self.data.unl, self.data.lab, self.data.lam
        z_play = self.batched(lambda ids: self.idm(self.windows(lab, ids)), self.lab_val_ids)  # (N, Z)
        pred, target = self.decoder(z_play).float(), self.actions(lab, self.lab_val_ids)
        m = {"probe/decoder_mse": F.mse_loss(pred, target).item(), "probe/decoder_r2": r2_score(pred, target)}
        out = self.batched(lambda ids: self._probe(self.windows(unl, ids)), self.probe_ids)  # (N, A+1+Z)
        A = pred.shape[1]
        relabels, fdm, z_unl = out[:, :A], out[:, A], out[:, A + 1:]
        m["probe/fdm_mse"] = fdm.mean().item()
        m["probe/lam_val_fdm"] = self.batched(lambda ids: self._probe(self.windows(lam, ids))[:, A:A + 1],
                                              self.lam_val_ids).mean().item()
        m["probe/latent_spread"] = latent_spread(z_unl, z_play)
        m.update(self.relabel_probe(relabels))
        if self.use_sidm:
            m["probe/disagreement"] = F.mse_loss(relabels, self.stage_data.sidm_probe).item()
        score = {"disagreement": "probe/disagreement", "fdm": "probe/lam_val_fdm", "decoder": "probe/decoder_mse"}
        if self.cfg.lam.select in score:
            self.keep_best("lam", m[score[self.cfg.lam.select]], i, {"idm": self.idm, "fdm": self.fdm, "decoder": self.decoder})
        return m

    def _probe(self, w: torch.Tensor) -> torch.Tensor:
        """Decoded relabel, FDM error and latent of each window from one IDM pass: (N, A+1+Z)."""
        z = self.idm(w)  # (N, Z)
        a = self.decoder(z).float()  # (N, A)
        cond = a if self.cfg.lam.fdm_input == "action" else z
        return torch.cat([a, self.fdm.error(w[:, :2], cond, w[:, 2])[:, None], z.float()], 1)

    def lam_end(self) -> dict:
        return self.restore_best("lam", {"idm": self.idm, "fdm": self.fdm, "decoder": self.decoder},
                                 self.cfg.lam.select != "last", self.cfg.lam.steps)

    def relabel(self) -> dict:
        self.idm.eval()
        out = self.stage_data
        out.relabels = self.relabel_all(self.idm)  # (frames, Z), NaN where no window
        if self.cfg.policy.space == "action":
            with torch.no_grad():
                out.decoded = self.decoder(out.relabels)  # (frames, A), NaN where no window
        pred = self.batched(lambda b: self.decoder(out.relabels[torch.from_numpy(b)]), self.probe_ids)
        return self.relabel_probe(pred, per_dim=True)
