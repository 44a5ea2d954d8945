"""What stages hand to later stages is named (engine.StageData) and survives a checkpoint in the format
older checkpoints (and clam-view) read: algo_state["extra"] with "relabels", "best/<stage>", ..."""

import pytest
import torch

from clamkit.trainer.config import ALGOS
from clamkit.trainer.engine import StageData
from clamkit.trainer.train import ALGORITHMS


def test_round_trip_through_the_checkpoint_dict(tmp_path):
    best = {"score": 0.5, "step": 30, "state": {"policy": {"w": torch.ones(2)}}}
    d = StageData(relabels=torch.arange(6.0).reshape(3, 2), play_latents=torch.zeros(4, 2), best={"lam": best})
    blob = d.to_dict()
    assert set(blob) == {"relabels", "play_latents", "best/lam"}  # unset tensors are left out, as before
    torch.save({"extra": blob}, tmp_path / "c.pt")
    back = StageData.from_dict(torch.load(tmp_path / "c.pt", weights_only=True)["extra"])
    assert torch.equal(back.relabels, d.relabels) and torch.equal(back.play_latents, d.play_latents)
    assert back.decoded is None and back.sidm_probe is None
    assert back.best["lam"]["step"] == 30 and torch.equal(back.best["lam"]["state"]["policy"]["w"], torch.ones(2))


def test_an_unknown_entry_is_refused():
    with pytest.raises(ValueError, match="unknown stage data"):
        StageData.from_dict({"relabels": torch.zeros(1), "latents_v2": torch.zeros(1)})


def test_one_name_per_algorithm():
    """config.ALGOS (what --set algo= accepts) names exactly the algorithm classes, by their own `name`."""
    assert sorted(ALGORITHMS) == sorted(ALGOS)
    assert ALGORITHMS["vq"].__module__ == "clamkit.trainer.vq"
