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
                "idm", self.sidm, lambda ids: self.windows(lab, ids), lambda ids: self.actions(lab, ids),
                lab.window_ids(d.lab_train), self.lab_val_ids, cfg.idm.steps, cfg.idm.eval_every,
                cfg.idm.select == "val" and self.has_lab_val, cfg.optim.lr),
            Stage("relabel", 0, end=self.relabel),
            self.regression_stage(
                "policy", self.policy, lambda ids: self.obs(unl, ids), lambda ids: self.extra["relabels"][torch.from_numpy(ids)],
                unl.window_ids(d.unl_train), self.unl_val_ids, cfg.policy.steps, cfg.policy.eval_every,
                cfg.policy.select == "val" and self.has_unl_val, cfg.optim.lr, extra_eval=self.policy_probe),
        ]

    def relabel(self) -> dict:
        self.extra["relabels"] = self.relabel_all(self.sidm)  # (frames, A) pseudo-actions in [-1, 1]
        return self.relabel_probe(self.extra["relabels"][torch.from_numpy(self.probe_ids)], per_dim=True)
