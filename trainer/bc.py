"""Behaviour cloning baselines, π(o_t) -> a_t by MSE (tanh output in the normalised action range).

  bc-play    BC on the labelled play data: the naive user choice (play is task-agnostic, non-expert).
  bc-expert  BC on the unlabelled set's hidden expert actions: the oracle upper bound, using labels
             CLAM never sees. Errors clearly when the unlabelled recording has no actions.
Both get the same held-out early stopping as every other policy (policy.select).
"""

from __future__ import annotations

from clamkit.errors import UserError
from clamkit.trainer.common import Common, subsample
from clamkit.trainer.engine import Stage


class BC(Common):
    """π(o_t) -> a_t on one store's labelled windows (t = 0 .. T-2)."""

    source = "lab"

    def __init__(self, cfg, data, run):
        super().__init__(cfg, data, run, policy_out=data.action.dim, squash=True)
        self.policy = self.deploy.policy
        self.stages = self.build_stages()

    def build_stages(self) -> list[Stage]:
        cfg, d = self.cfg, self.data
        store = d.lab if self.source == "lab" else d.unl
        train_eps, val_eps = (d.lab_train, d.lab_val) if self.source == "lab" else (d.unl_train, d.unl_val)
        has_val = bool(val_eps)
        val_ids = subsample(store.window_ids(val_eps or train_eps, before=0), cfg.data.probe_windows, cfg.run.seed + 3)
        # ---- ALGO LOGIC
        return [self.regression_stage(
            "policy", self.policy, x_fn=lambda ids: self.obs(store, ids), y_fn=lambda ids: self.actions(store, ids),
            train_ids=store.window_ids(train_eps, before=0), val_ids=val_ids, steps=cfg.policy.steps,
            eval_every=cfg.policy.eval_every, select=cfg.policy.select == "val" and has_val, lr=cfg.optim.lr,
            probe=self.policy_probe)]


class BCPlay(BC):
    name = "bc-play"
    source = "lab"


class BCExpert(BC):
    name = "bc-expert"
    source = "unl"

    def __init__(self, cfg, data, run):
        if not data.hidden_actions:
            raise UserError(f"algo=bc-expert is the oracle baseline: it trains on the unlabelled data's actions, and "
                            f"{', '.join(data.sources['unlabelled'])} has episodes without actions")
        super().__init__(cfg, data, run)
