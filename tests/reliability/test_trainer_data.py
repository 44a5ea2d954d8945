"""Contents checks where the data is read: the trainer's data loading verifies every episode it uses
(crc32 recorded at write time, NaN/Inf in float arrays) and names the episode file; `clam-record info`
does the same for a whole dataset. Opening a Dataset stays header-only (see test_fuzz_loaders)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clamkit.errors import DatasetError

torch = pytest.importorskip("torch")
SMOKE = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")


def _load(root, *sets):
    from clamkit.config import load_config
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.data import load_data

    cfg, _ = load_config(TrainConfig, SMOKE, list(sets))
    return load_data(cfg, [str(root)], [str(root)], torch.device("cpu"))


def _poke(root: Path, ep: int, key: str, value, crc: str) -> Path:
    """Overwrite one value of an episode file; crc 'update' (written so on purpose), 'drop' (a dataset from
    before checksums) or 'keep' (bit rot: the checksum no longer matches)."""
    f = root / "episodes" / f"{ep:06d}" / f"{key}.npy"
    a = np.load(f)
    a.reshape(len(a), -1)[2, 0] = value
    np.save(f, a)
    m = json.loads((root / "meta.json").read_text())
    if crc == "update":
        from clamkit.dataset import array_crc32

        m["episodes"][ep]["crc32"][key] = array_crc32(a)
    elif crc == "drop":
        m["episodes"][ep].pop("crc32", None)
    (root / "meta.json").write_text(json.dumps(m))
    return f


def test_clean_data_loads(tmp_path, rel):
    data = _load(rel.write_dataset(tmp_path / "d"))
    assert data.key == "state" and np.isfinite(data.unl.frames.numpy()).all()


@pytest.mark.parametrize("ep, key, value, crc, match", [
    (1, "state", np.nan, "update", "NaN or Inf"),
    (0, "state", np.inf, "drop", "NaN or Inf"),
    (0, "action", -np.inf, "drop", "NaN or Inf"),
    (1, "action", np.nan, "update", "NaN or Inf"),
    (0, "state", 1e3, "keep", "crc32"),  # a changed value, the checksum recorded at write time disagrees
])
def test_trainer_names_the_episode_file(tmp_path, rel, ep, key, value, crc, match):
    root = rel.write_dataset(tmp_path / "d")
    f = _poke(root, ep, key, value, crc)
    with pytest.raises(DatasetError, match=match) as e:
        _load(root)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_image_bit_rot_is_caught_where_images_are_loaded(tmp_path, rel):
    root = rel.write_dataset(tmp_path / "d")
    f = root / "episodes" / "000001" / "image.npy"
    b = bytearray(f.read_bytes())
    b[-5] ^= 0x10  # one bit of one pixel
    f.write_bytes(bytes(b))
    _load(root)  # the state run does not read images: nothing to complain about
    with pytest.raises(DatasetError, match="crc32") as e:
        _load(root, "data.obs=image", "model.channels=[8]", "model.image_hidden=[16]")
    assert str(f) in str(e.value)


def test_infinite_action_bounds_are_repaired_from_the_recorded_range(tmp_path, rel):
    """Documented repair (trainer/data.py): unbounded actions are normalised to the recorded min/max, padded."""
    root = rel.write_dataset(tmp_path / "d")
    m = json.loads((root / "meta.json").read_text())
    m["action"]["low"], m["action"]["high"] = [-np.inf, -1.0], [np.inf, 1.0]
    (root / "meta.json").write_text(json.dumps(m))
    data = _load(root)
    lo, hi = np.asarray(m["stats"]["action"]["min"]), np.asarray(m["stats"]["action"]["max"])
    assert np.isfinite(data.low).all() and np.isfinite(data.high).all()
    assert data.low[0] < lo[0] and data.high[0] > hi[0] and data.low[1] == -1.0 and data.high[1] == 1.0


def test_clam_record_info_verifies_contents(tmp_path, rel):
    root = rel.write_dataset(tmp_path / "d")
    f = _poke(root, 2, "state", np.nan, "update")
    p = subprocess.run([sys.executable, "-m", "clamkit.record.cli", "info", str(root)], capture_output=True, text=True)
    assert p.returncode == 2, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(f) in lines[0] and "NaN" in lines[0], p.stderr
