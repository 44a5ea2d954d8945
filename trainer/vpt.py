"""VPT-style baseline (Baker et al., 2022): an IDM trained supervised on the labelled play data
relabels the unlabelled windows with actions, then BC on those pseudo-labels.

Stages: idm (supervised, held-out early stopping: the prototype found VPT's IDM also better when
trained shorter) -> relabel -> policy (π(o_t) -> â_t, tanh, held-out selection on unlabelled episodes).
"""

from __future__ import annotations

import torch

from clamkit.trainer.common import Common
from clamkit.trainer.engine import Stage


class VPT(Common):
    name = "vpt"

    def __init__(self, cfg, data, run):
        super().__init__(cfg, data, run, policy_out=data.action.dim, squash=True)
        self.sidm = self.build("IDM", data.action.dim, squash=True)
        self.modules["sidm"] = self.sidm
        self.policy = self.deploy.policy
        self.stages = self.build_stages()

    def build_stages(self) -> list[Stage]:
        cfg, d = self.cfg, self.data
        unl, lab = d.unl, d.lab
        # ---- ALGO LOGIC
        return [
            self.regression_stage(
                "idm", self.sidm, x_fn=lambda ids: self.windows(lab, ids), y_fn=lambda ids: self.actions(lab, ids),
                train_ids=lab.window_ids(d.lab_train), val_ids=self.lab_val_ids, steps=cfg.idm.steps,
                eval_every=cfg.idm.eval_every, select=cfg.idm.select == "val" and self.has_lab_val, lr=cfg.optim.lr),
            Stage("relabel", 0, end=self.relabel),
            self.regression_stage(
                "policy", self.policy, x_fn=lambda ids: self.obs(unl, ids),
                y_fn=lambda ids: self.stage_data.relabels[torch.from_numpy(ids)],
                train_ids=unl.window_ids(d.unl_train), val_ids=self.unl_val_ids, steps=cfg.policy.steps,
                eval_every=cfg.policy.eval_every, select=cfg.policy.select == "val" and self.has_unl_val,
                lr=cfg.optim.lr, probe=self.policy_probe),
        ]

    def relabel(self) -> dict:
        self.stage_data.relabels = self.relabel_all(self.sidm)  # (frames, A) pseudo-actions in [-1, 1]
        return self.relabel_probe(self.stage_data.relabels[torch.from_numpy(self.probe_ids)], per_dim=True)
