"""What the five algorithms share: the deployable policy they train in place, batch fetching,
the optimiser step, held-out model selection, and a supervised-regression stage.

Units: observations are preprocessed by the DeployPolicy's own `prep` (what the robot will run);
actions are compared in normalised units, [-1, 1] across the action bounds, so every reported MSE
(losses/, val/, probe/) is in those units whatever the robot.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from clamkit.errors import UserError
from clamkit.trainer.conv import random_shift
from clamkit.trainer.data import Sampler, TrainData
from clamkit.trainer.deploy import DeployPolicy, family
from clamkit.trainer.engine import Algorithm, Run, Stage

log = logging.getLogger(__name__)
PREV_NOW_NEXT = (-1, 0, 1)  # the IDM window o_{t-1}, o_t, o_{t+1} around a window id (o_t)


def subsample(ids: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A fixed, sorted subsample of at most n ids (deterministic in seed)."""
    if len(ids) <= n:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))


def lr_scale(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at `step` (0-based) of a stage of `total` steps: linear warm-up over `warmup`
    steps, then 1 ("constant") or a half cosine down to 0 at the last step ("cosine")."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine" and total > warmup:
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup + 1) / (total - warmup))))
    return 1.0


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Pooled coefficient of determination over all action dims: 1 - SSE / SST."""
    sse = (pred - target).pow(2).sum()
    sst = (target - target.mean(0)).pow(2).sum().clamp_min(1e-12)
    return float(1 - sse / sst)


class MSELoss(nn.Module):
    """model(x) vs y; a module so DDP / torch.compile can wrap it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.model(x).float(), y)


def build_deploy(cfg, data: TrainData, policy_out: int, squash: bool, decoder: bool) -> DeployPolicy:
    """The DeployPolicy for this data and config, with the normalisation statistics filled in."""
    shape = data.obs_spec.shape
    if data.key == "image":
        size = cfg.data.image_size or shape[0]
        if not cfg.data.image_size and shape[0] != shape[1]:
            raise UserError(f"images are {shape[0]}x{shape[1]}; set a square training size with --set data.image_size=64")
        net = {"hidden": list(cfg.model.image_hidden), "channels": list(cfg.model.channels)}
    else:
        size = 0
        net = {"hidden": list(cfg.model.hidden)}
    arch = {"key": data.key, "in_shape": list(shape), "image_size": size, "net": net, "policy_out": int(policy_out),
            "squash": bool(squash), "action_dim": data.action.dim,
            "decoder": {"la_dim": cfg.model.la_dim, "hidden": list(cfg.model.decoder_hidden)} if decoder else None}
    policy = DeployPolicy(arch)
    with torch.no_grad():
        if data.key == "state":
            policy.prep.mean.copy_(torch.from_numpy(data.state_mean))
            policy.prep.std.copy_(torch.from_numpy(data.state_std))
        policy.low.copy_(torch.from_numpy(data.low))
        policy.high.copy_(torch.from_numpy(data.high))
    return policy


class Common(Algorithm):
    """Base class: builds the DeployPolicy (trained in place), fixed probe sets, and the helpers below."""

    latent = False  # does the deployed policy go through a latent + action decoder?

    def __init__(self, cfg, data: TrainData, run: Run, policy_out: int, squash: bool):
        super().__init__()
        self.cfg, self.data, self.run, self.dev = cfg, data, run, run.device
        self.deploy = build_deploy(cfg, data, policy_out, squash, decoder=self.latent).to(self.dev)
        self.modules["deploy"] = self.deploy
        self.family = family(data.key)
        self.shape = self.deploy.model_shape  # per-frame model input: (D,) or (3, S, S)
        self.net = dict(self.deploy.arch["net"])
        self.eval_batch = 1024 if data.key == "state" else 128
        seed = cfg.run.seed
        # Fixed evaluation sets. Held-out episodes when there are any; otherwise (one episode) the training ones.
        unl, lab = data.unl, data.lab
        if not data.lab_val:
            log.warning("only one labelled episode: probes and selection use training windows (no held-out play)")
        if not data.unl_val:
            log.warning("only one unlabelled episode: policy selection uses training windows")
        n = cfg.data.probe_windows
        self.probe_ids = subsample(unl.window_ids(), n, seed)  # disagreement / relabel probes
        self.lab_val_ids = subsample(lab.window_ids(data.lab_val or data.lab_train), n, seed + 1)
        self.unl_val_ids = subsample(unl.window_ids(data.unl_val or data.unl_train), n, seed + 2)
        self.lam_val_ids = subsample(data.lam.window_ids(data.lam_val or data.lam_train), n, seed + 3)  # LAM held-out
        self.has_lab_val, self.has_unl_val = bool(data.lab_val), bool(data.unl_val)

    def build(self, kind: str, out_dim: int, **kw) -> nn.Module:
        """A model of this data's family ("IDM" or "FDM"), on the device, its Δ scaling set from the data."""
        if kind == "FDM" and self.data.key == "image" and self.cfg.model.fdm_size:
            kw["size"] = self.cfg.model.fdm_size
        if kind == "IDM" and self.data.key == "image" and self.cfg.model.idm_motion:
            kw["motion"] = True
        m = getattr(self.family, kind)(self.shape, out_dim, **self.net, **kw).to(self.dev)
        if hasattr(m, "delta_scale") and self.data.delta_rms is not None:
            m.delta_scale.copy_(1.0 / torch.from_numpy(self.data.delta_rms))
        return m

    @property
    def la_dim(self) -> int:
        return self.cfg.model.la_dim if self.latent else 0

    # ---- data

    def windows(self, store, ids) -> torch.Tensor:
        """(N, 3, *shape): o_{t-1}, o_t, o_{t+1}, preprocessed."""
        return self.deploy.prep(store.get(ids, PREV_NOW_NEXT))

    def obs(self, store, ids) -> torch.Tensor:
        """(N, *shape): o_t, preprocessed."""
        return self.deploy.prep(store.get(ids, (0,)))[:, 0]

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """A training batch of frames or windows, randomly shifted when data.shift > 0 (pixels only)."""
        pad = self.cfg.data.shift
        return random_shift(x, pad) if pad and self.data.key == "image" else x

    def actions(self, store, ids) -> torch.Tensor:
        """(N, A): a_t in normalised units [-1, 1]."""
        return self.deploy.normalize(store.actions(ids))

    @torch.no_grad()
    def batched(self, fn, ids: np.ndarray) -> torch.Tensor:
        """fn over ids in evaluation-sized chunks, concatenated (no grad)."""
        with self.run.autocast():
            return torch.cat([fn(ids[i:i + self.eval_batch]).float() for i in range(0, len(ids), self.eval_batch)])

    # ---- optimisation

    def sampler(self, name: str, pool: np.ndarray) -> Sampler:
        s = Sampler(name, pool, self.cfg.optim.batch_size, self.cfg.run.seed, self.run.rank)
        self.samplers[name] = s
        return s

    def adamw(self, name: str, groups: list[dict]) -> torch.optim.Optimizer:
        for g in groups:
            g["params"] = list(g["params"])
            g["initial_lr"] = g["lr"]
        opt = torch.optim.AdamW(groups, weight_decay=self.cfg.optim.weight_decay)
        self.optims[name] = opt
        return opt

    def update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, step: int, total: int) -> None:
        """Learning-rate schedule (step of a stage of `total` steps), backward, global-norm clip, AdamW step."""
        o = self.cfg.optim
        scale = lr_scale(step, total, o.warmup, o.schedule)
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * scale
        self.last_lr = opt.param_groups[0]["lr"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], o.grad_clip)
        opt.step()

    # ---- model selection (the same rule for CLAM and every baseline)

    def keep_best(self, name: str, score: float, step: int, modules: dict[str, nn.Module]) -> None:
        best = self.stage_data.best.get(name)
        if best is None or score < best["score"]:
            self.stage_data.best[name] = {"score": float(score), "step": int(step),
                                          "state": {k: {n: t.detach().clone() for n, t in m.state_dict().items()}
                                                    for k, m in modules.items()}}

    def restore_best(self, name: str, modules: dict[str, nn.Module], enabled: bool, last_step: int) -> dict:
        best = self.stage_data.best.pop(name, None)
        if not enabled or best is None:
            return {f"select/{name}_step": last_step}
        for k, m in modules.items():
            m.load_state_dict(best["state"][k])
        return {f"select/{name}_step": best["step"], f"select/{name}_score": best["score"]}

    # ---- a supervised regression stage, used for the supervised IDM, BC, the VQ decoder and latent BC

    def regression_stage(self, name: str, model: nn.Module, *, x_fn: Callable[[np.ndarray], torch.Tensor],
                         y_fn: Callable[[np.ndarray], torch.Tensor], train_ids: np.ndarray, val_ids: np.ndarray,
                         steps: int, eval_every: int, select: bool, lr: float, probe: Callable[[], dict] | None = None,
                         after: Callable[[], dict] | None = None) -> Stage:
        """MSE regression model(x_fn(ids)) -> y_fn(ids) on train_ids windows; every eval_every steps the held-out
        MSE on val_ids (val/<name>_mse) is measured, plus probe()'s metrics, and with select the best weights
        are kept and restored at the end; after() runs last."""
        opt = self.adamw(name, [{"params": model.parameters(), "lr": lr}])
        sampler = self.sampler(name, train_ids)
        loss_mod = self.run.wrap(MSELoss(model))

        def step(i: int) -> dict:
            ids = sampler()
            x, y = self.augment(x_fn(ids)), y_fn(ids)
            with self.run.autocast():
                loss = loss_mod(x, y)
            self.update(opt, loss, i, steps)
            return {f"losses/{name}": loss.detach()}

        def evaluate(i: int) -> dict:
            pred = self.batched(lambda ids: model(x_fn(ids)), val_ids)
            v = F.mse_loss(pred, y_fn(val_ids)).item()
            self.keep_best(name, v, i, {name: model})
            m = {f"val/{name}_mse": v}
            if probe is not None:
                m.update(probe())
            return m

        def end() -> dict:
            m = self.restore_best(name, {name: model}, select, steps)
            if after is not None:
                m.update(after())
            return m

        return Stage(name, steps, step, evaluate, eval_every, end)

    # ---- probes

    def relabel_probe(self, pred: torch.Tensor, prefix: str = "probe/relabel", per_dim: bool = False) -> dict:
        """Decoded relabels of the probe windows vs the hidden actions (diagnostic only; {} without them).
        MSE in normalised units and R² over the hidden actions' own variance (R² < 0: worse than their mean)."""
        if not self.data.hidden_actions:
            return {}
        target = self.actions(self.data.unl, self.probe_ids)
        m = {f"{prefix}_mse": F.mse_loss(pred, target).item(), f"{prefix}_r2": r2_score(pred, target)}
        if per_dim:
            err = (pred - target).pow(2).mean(0)  # (A,)
            m.update({f"{prefix}_mse_dim{i}": e.item() for i, e in enumerate(err)})
        return m

    def policy_probe(self) -> dict:
        """The deployed policy's action error against the unlabelled set's hidden actions (diagnostic only)."""
        if not self.data.hidden_actions:
            return {}
        pred = self.batched(lambda ids: self.deploy.normalized_action(self.obs(self.data.unl, ids)), self.unl_val_ids)
        return {"probe/policy_action_mse": F.mse_loss(pred, self.actions(self.data.unl, self.unl_val_ids)).item()}

    def relabel_all(self, fn, store=None) -> torch.Tensor:
        """fn(windows) for every window of `store` (default: unlabelled), as a (frames, out) tensor
        indexed by window id (NaN at frames that are no window's o_t)."""
        store = store or self.data.unl
        ids = store.window_ids()
        out = self.batched(lambda b: fn(self.windows(store, b)), ids)
        full = torch.full((store.total, out.shape[1]), float("nan"), device=out.device)
        full[torch.from_numpy(ids).to(out.device)] = out
        return full
