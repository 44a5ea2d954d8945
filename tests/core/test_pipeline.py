"""clamkit.pipeline composes the stages; without it each stage says what is missing instead of importing it."""

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")  # the train extra


def test_train_refuses_eval_without_an_evaluate_step(tmp_path):
    from clamkit.config import load_config
    from clamkit.errors import UserError
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.train import train

    cfg, _ = load_config(TrainConfig, None, ["eval.episodes=2"])
    with pytest.raises(UserError, match="eval.episodes > 0 needs the export and runtime stages"):
        train(cfg, ["no-such-dataset"], ["no-such-dataset"], tmp_path / "run")  # refused before reading anything
    assert not (tmp_path / "run").exists()


def test_export_command_needs_the_trainers_reader_for_a_run(tmp_path):
    from clamkit.export.cli import main as stage_command
    from clamkit.pipeline import export_main

    (tmp_path / "run").mkdir()
    res = CliRunner().invoke(stage_command, [str(tmp_path / "run")])
    assert res.exit_code == 2 and "needs the trainer's policy reader" in res.output
    res = CliRunner().invoke(export_main, [str(tmp_path / "run")])  # composed: reads the run, finds no policy
    assert res.exit_code == 2 and "no trained policy here" in res.output
    assert export_main.context_settings["help_option_names"] == ["-h", "--help"]
