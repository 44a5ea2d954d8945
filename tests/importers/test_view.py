"""clam-view writes a Rerun recording / PNG contact sheet with the expected streams for a dataset, rollouts and a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from clamkit.dataset import DatasetWriter
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec
from clamkit.view.cli import main


def _rollouts(root, n=2, T=6):
    w = DatasetWriter(root, observation=ObservationSpec({"image": ArraySpec((16, 16, 3), "uint8"), "state": ArraySpec((3,), "float32")}),
                      action=ActionSpec(2, (-1, -1), (1, 1), "x"), fps=5, robot="fake")
    rng = np.random.default_rng(0)
    for i in range(n):
        w.add_episode({"image": rng.integers(0, 255, (T, 16, 16, 3), dtype=np.uint8), "state": rng.standard_normal((T, 3))},
                      rng.uniform(-1, 1, (T - 1, 2)), success=bool(i % 2 == 0))
    return root


def _view(*args) -> dict:
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output.strip().splitlines()[-1])


def _rrd_entities(path) -> set[str]:
    from rerun.chunk import RrdReader

    return {str(e).lstrip("/") for e in RrdReader(str(path)).store().schema().entity_paths()}


def test_rollouts_rerun_recording_has_frames_actions_and_success_marks(tmp_path):
    pytest.importorskip("rerun", reason="rerun-sdk (extra 'viz') is not installed")
    _rollouts(tmp_path / "ro")
    out = _view(tmp_path / "ro", "--out", tmp_path / "ro.rrd")
    assert out["kind"] == "rollouts" and out["episodes"] == 2
    ents = _rrd_entities(tmp_path / "ro.rrd")
    for i in range(2):
        assert {f"episode_{i:06d}/camera", f"episode_{i:06d}/action/0", f"episode_{i:06d}/action/1",
                f"episode_{i:06d}/success"} <= ents


def test_dataset_contact_sheet_lists_its_panels(tmp_path):
    from PIL import Image

    _rollouts(tmp_path / "ro", n=3)
    _view(tmp_path / "ro", "--out", tmp_path / "sheet.png")
    im = Image.open(tmp_path / "sheet.png")
    panels = json.loads(im.info["clamkit:panels"])
    assert {"episode_000000/camera", "episode_000000/action", "episode_000002/success"} <= set(panels)
    assert np.asarray(im.convert("L")).std() > 5  # something was drawn
    gif = Image.open(tmp_path / "sheet.gif")
    assert gif.n_frames == 6


def test_bad_target_is_one_line_exit_2(tmp_path):
    res = CliRunner().invoke(main, [str(tmp_path / "nothing")])
    assert res.exit_code == 2 and res.output.startswith("error:") and len(res.output.strip().splitlines()) == 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "loss/lam": 0.5}\n')
    res = CliRunner().invoke(main, [str(tmp_path / "run"), "--data", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and res.output.startswith("error:")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real (tiny) CLAM run on the synthetic linear system: checkpoint.pt holds the IDM's relabels."""
    torch = pytest.importorskip("torch")
    from pathlib import Path

    from synthetic import write_linear

    from clamkit.config import load_config
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.train import train

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("viewrun")
    unl, lab = write_linear(d / "expert", "expert", 4, T=20), write_linear(d / "play", "play", 3, T=20)
    root = Path(__file__).resolve().parents[2]
    cfg, _ = load_config(TrainConfig, str(root / "configs" / "smoke.yaml"),
                         ["lam.steps=30", "lam.eval_every=10", "idm.steps=10", "idm.eval_every=5", "policy.steps=10",
                          "policy.eval_every=5", "optim.batch_size=16", "data.probe_windows=32", "run.progress=false"])
    train(cfg, [unl], [lab], d / "run")
    return d / "run", unl


def test_run_recording_shows_decoded_relabels_next_to_true_actions(tiny_run, tmp_path):
    pytest.importorskip("rerun", reason="rerun-sdk (extra 'viz') is not installed")
    run, unl = tiny_run
    out = _view(run, "--data", unl, "--out", tmp_path / "run.rrd", "--episodes", "2")
    assert out["kind"] == "run" and out["episodes"] == 2
    ents = _rrd_entities(tmp_path / "run.rrd")
    name = "expert/episode_000000"
    assert {f"{name}/action/0", f"{name}/decoded/0", f"{name}/decoded/1", f"{name}/latent/0", f"{name}/latent/7"} <= ents
    assert any(e.startswith("metrics/probe/") for e in ents) and any(e.startswith("metrics/loss") for e in ents)


def test_run_decoded_relabels_are_the_decoder_of_the_idm_latents(tiny_run):
    """The numbers behind the picture: d(z_t) in robot units, finite exactly where a window exists."""
    from clamkit.view.scene import load

    run, unl = tiny_run
    scene = load(run, [unl], max_episodes=4)
    t = scene.tracks[0]
    assert t.latents.shape == (20, 8) and t.decoded.shape == (20, 2) and t.actions.shape == (19, 2)
    finite = np.isfinite(t.decoded).all(1)
    assert not finite[0] and not finite[-1] and finite[1:-1].all()  # windows need o_{t-1} and o_{t+1}
    assert np.abs(t.decoded[1:-1]).max() <= 1.0 + 1e-5  # inside the action bounds (Tanh decoder, rescaled)


def test_run_with_the_wrong_data_is_refused(tiny_run, tmp_path):
    from synthetic import write_linear

    run, _ = tiny_run
    other = write_linear(tmp_path / "other", "expert", 2, T=15)
    res = CliRunner().invoke(main, [str(run), "--data", other, "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "relabels for" in res.output


def test_run_contact_sheet_has_relabel_latent_and_metric_panels(tiny_run, tmp_path):
    from PIL import Image

    run, unl = tiny_run
    _view(run, "--data", unl, "--out", tmp_path / "run.png", "--episodes", "2")
    panels = set(json.loads(Image.open(tmp_path / "run.png").info["clamkit:panels"]))
    name = "expert/episode_000001"
    assert {f"{name}/action", f"{name}/decoded", f"{name}/latent"} <= panels
    assert any(p.startswith("metrics/probe/") for p in panels)


def test_without_rerun_the_default_is_a_contact_sheet(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rerun" else real(name, *a))
    _rollouts(tmp_path / "ro")
    out = _view(tmp_path / "ro")
    assert out["out"].endswith("ro-view.png") and (tmp_path / "ro-view.png").is_file() and (tmp_path / "ro-view.gif").is_file()
