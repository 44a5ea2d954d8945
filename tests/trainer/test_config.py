"""clamkit/config.py + trainer/config.py: YAML -> validated dataclasses, --set overrides, the shipped configs."""

import json
from pathlib import Path

import pytest
import yaml

from clamkit.config import from_dict, load_config, save_config, to_dict
from clamkit.errors import ConfigError
from clamkit.trainer.config import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
TRAINER_CONFIGS = [p for p in CONFIGS if p.stem in ("smoke", "smoke-image", "metaworld-state", "metaworld-image", "dmc-state")]


def test_shipped_configs_load():
    assert {p.stem for p in TRAINER_CONFIGS} == {"smoke", "smoke-image", "metaworld-state", "metaworld-image", "dmc-state"}
    for p in TRAINER_CONFIGS:
        cfg, _ = load_config(TrainConfig, p)
        assert cfg.algo == "clam"
    cfg, _ = load_config(TrainConfig, TRAINER_CONFIGS[0].parent / "metaworld-image.yaml")
    assert cfg.data.obs == "image" and cfg.lam.weight == 0.01


def test_model_and_optimiser_defaults_are_the_reference_recipe():
    cfg = TrainConfig()
    assert cfg.model.hidden == [1024, 1024] and cfg.model.la_dim == 8
    assert cfg.optim.lr == 3e-4 and cfg.optim.decoder_lr == 1e-3 and cfg.optim.grad_clip == 1.0


def test_lam_defaults_are_the_documented_deviation():
    """Not the reference: a short LAM kept at its lowest held-out reconstruction error, chosen on validation
    seeds (docs/design.md §3, "What has been measured"); the reference config keeps the same choice."""
    cfg = TrainConfig()
    assert cfg.lam.select == "fdm" and cfg.lam.steps == 1000
    ref, _ = load_config(TrainConfig, TRAINER_CONFIGS[0].parent / "metaworld-state.yaml")
    assert ref.lam.select == cfg.lam.select


def test_overrides_are_type_checked_and_echoed():
    cfg, echo = load_config(TrainConfig, None, ["lam.steps=500", "algo=vpt", "model.hidden=[64, 32]", "optim.lr=3e-4",
                                                "lam.weight=null", "run.amp=true"])
    assert cfg.lam.steps == 500 and cfg.algo == "vpt" and cfg.model.hidden == [64, 32] and cfg.optim.lr == 3e-4
    assert cfg.lam.weight is None and cfg.run.amp is True
    assert "override lam.steps: 1000 -> 500" in echo
    assert len(echo) == 6


@pytest.mark.parametrize("override, message", [
    ("lam.stpes=3", "unknown config key 'lam.stpes' (did you mean 'lam.steps'?)"),
    ("nosuch=1", "unknown config key 'nosuch'"),
    ("lam.steps=abc", "config key 'lam.steps': 'abc' is not of type int"),
    ("lam.steps=1.5", "is not of type int"),
    ("model.hidden=7", "is not a list of int"),
    ("algo=ppo", "config key 'algo': 'ppo' is not one of"),
    ("lam.select=best", "config key 'lam.select'"),
    ("lam.steps=0", "config key 'lam.steps': must be >= 1"),
    ("lam.steps.x=1", "is not a section"),
    ("lam.steps", "expected key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, None, [override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_key_in_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lam:\n  steps: 10\n  lamda: 2\n")
    with pytest.raises(ConfigError, match="unknown config key 'lam.lamda'"):
        load_config(TrainConfig, p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainConfig, tmp_path / "missing.yaml")
    p.write_text("lam: [1, 2]\n")
    with pytest.raises(ConfigError, match="'lam'"):
        load_config(TrainConfig, p)


def test_resolved_config_round_trips(tmp_path):
    cfg, _ = load_config(TrainConfig, TRAINER_CONFIGS[0], ["lam.weight=2"])
    save_config(cfg, tmp_path / "config.yaml")
    again = from_dict(TrainConfig, yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert to_dict(again) == to_dict(cfg)


def test_lr_schedule_warms_up_then_holds_or_decays_to_zero():
    from clamkit.trainer.common import lr_scale

    assert [lr_scale(i, 100, 4, "constant") for i in (0, 3, 50, 99)] == [0.25, 1.0, 1.0, 1.0]
    cos = [lr_scale(i, 100, 4, "cosine") for i in range(100)]
    assert cos[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(cos[4:], cos[5:]))  # monotone after the warm-up
    assert cos[-1] == pytest.approx(0.0, abs=1e-12) and cos[52] == pytest.approx(0.5, abs=0.02)
    assert lr_scale(5, 3, 0, "cosine") == pytest.approx(0.0)  # a stage asked past its end stays at 0
    with pytest.raises(ConfigError, match="optim.schedule"):
        load_config(TrainConfig, None, ["optim.schedule=linear"])


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_every_stage_follows_the_schedule(schedule, tmp_path, helpers):
    """The schedule reaches the optimisers of every stage: charts/lr at each stage's last step is the full rate
    (constant) or 0 (cosine), and half-way through a cosine stage it is about half."""
    expert = helpers.write_linear(tmp_path / "expert", "expert", 4)
    play = helpers.write_linear(tmp_path / "play", "play", 3)
    helpers.clam_train(expert, play, tmp_path / "run", f"optim.schedule={schedule}", "optim.warmup=0", "optim.lr=1e-3",
                       "lam.steps=40", "idm.steps=40", "policy.steps=40", "run.log_every=20")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lr = {(r["stage"], r["step"]): r["charts/lr"] for r in rows if "charts/lr" in r}
    stages = sorted({s for s, _ in lr})
    assert {"lam", "policy"} <= set(stages)
    for stage in stages:
        steps = sorted(st for s, st in lr if s == stage)
        mid, last = lr[(stage, steps[0])], lr[(stage, steps[-1])]
        if schedule == "constant":
            assert last == pytest.approx(1e-3)
        else:
            assert last == pytest.approx(0.0, abs=1e-9) and mid == pytest.approx(5e-4, rel=0.1)
