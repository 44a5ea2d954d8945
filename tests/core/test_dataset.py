"""The dataset format: time convention, validation with one-line errors, atomic appends."""

import json
import subprocess
import sys

import numpy as np
import pytest

from clamkit.dataset import Dataset, DatasetWriter, merge_stats
from clamkit.errors import DatasetError
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

OBS = ObservationSpec({"state": ArraySpec((2,), "float32")})
ACT = ActionSpec(dim=1, low=(-1000,), high=(1000,), semantics="test")


def time_indexed_dataset(root, lengths=(6, 9), labelled=(True, False)):
    """Observation t of episode e is [e, t]; action t is 100*e + t (the action taken AT o_t)."""
    w = DatasetWriter(root, observation=OBS, action=ACT, fps=10, robot="test")
    for e, (T, lab) in enumerate(zip(lengths, labelled)):
        t = np.arange(T, dtype=np.float32)
        obs = {"state": np.stack([np.full(T, e, np.float32), t], 1)}
        w.add_episode(obs, (100 * e + t[:-1, None]) if lab else None)
    return Dataset(root)


def test_windows_follow_the_time_convention(tmp_path):
    ds = time_indexed_dataset(tmp_path / "d")
    idx = ds.window_index()
    # Episode of T frames gives windows centred on t = 1 .. T-2.
    assert [tuple(r) for r in idx[:4]] == [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert len(idx) == (6 - 2) + (9 - 2)
    w = ds.windows(idx, "state")  # (N, 3, 2): o_{t-1}, o_t, o_{t+1}
    assert w.shape == (11, 3, 2)
    np.testing.assert_array_equal(w[:, :, 0], idx[:, :1].repeat(3, 1))  # same episode throughout
    np.testing.assert_array_equal(w[:, :, 1], idx[:, 1:] + np.array([-1, 0, 1]))
    lab = ds.window_index(labelled=True)
    a = ds.actions(lab)
    # a_t is the action executed at o_t (the window's centre), producing o_{t+1}.
    np.testing.assert_array_equal(a[:, 0], 100 * lab[:, 0] + lab[:, 1])
    with pytest.raises(DatasetError):
        ds.actions(ds.window_index(labelled=False))
    # Wider context windows shrink the valid range at both ends.
    idx2 = ds.window_index(before=2, after=2, episodes=[0])
    assert [int(t) for _, t in idx2] == [2, 3]


def test_stats_are_computed_at_write_time_and_merge(tmp_path):
    ds = time_indexed_dataset(tmp_path / "d")
    s = ds.stats["state"]
    assert s["count"] == 15
    np.testing.assert_allclose(s["mean"], [9 / 15, (15 + 36) / 15])
    assert ds.stats["action"]["count"] == 5
    merged = merge_stats([ds.stats["state"], ds.stats["state"]])
    assert merged["count"] == 30 and np.allclose(merged["mean"], s["mean"]) and np.allclose(merged["std"], s["std"])


def test_writer_appends_and_ignores_half_written_episode(tmp_path):
    root = tmp_path / "d"
    time_indexed_dataset(root)
    (root / "episodes" / ".tmp-000002").mkdir()  # left by a recording killed mid-write
    (root / "episodes" / ".tmp-000002" / "state.npy").write_bytes(b"junk")
    w = DatasetWriter(root, observation=OBS, action=ACT, fps=10, robot="test")
    assert len(w) == 2 and not (root / "episodes" / ".tmp-000002").exists()
    w.add_episode({"state": np.zeros((3, 2))}, np.zeros((2, 1)))
    assert len(Dataset(root)) == 3
    with pytest.raises(DatasetError, match="different observation"):
        DatasetWriter(root, observation=ObservationSpec({"state": ArraySpec((5,), "float32")}), action=ACT, fps=10, robot="t")


@pytest.mark.parametrize("bad", [
    {"state": np.zeros((4, 2)), "actions": np.zeros((4, 1))},  # T actions for T frames
    {"state": np.zeros((4, 3)), "actions": np.zeros((3, 1))},  # wrong obs shape
    {"state": np.full((4, 2), np.nan), "actions": np.zeros((3, 1))},
    {"state": np.zeros((1, 2)), "actions": None},
])
def test_writer_rejects_bad_episodes(tmp_path, bad):
    w = DatasetWriter(tmp_path / "d", observation=OBS, action=ACT, fps=10, robot="test")
    with pytest.raises(DatasetError):
        w.add_episode({"state": bad["state"]}, bad["actions"])
    assert len(Dataset(tmp_path / "d")) == 0


def _truncate(root):
    f = root / "episodes" / "000001" / "state.npy"
    f.write_bytes(f.read_bytes()[:-20])
    return f


def _break_meta(root):
    f = root / "meta.json"
    f.write_text(f.read_text()[:-30])
    return f


def _mismatch_lengths(root):
    f = root / "meta.json"
    m = json.loads(f.read_text())
    m["episodes"][0]["length"] += 1
    f.write_text(json.dumps(m))
    return root / "episodes" / "000000" / "state.npy"


def _missing_action(root):
    f = root / "episodes" / "000000" / "action.npy"
    f.unlink()
    return f


@pytest.mark.parametrize("corrupt", [_truncate, _break_meta, _mismatch_lengths, _missing_action])
def test_corrupt_dataset_gives_one_line_error_naming_the_file(tmp_path, corrupt):
    root = tmp_path / "d"
    time_indexed_dataset(root)
    bad_file = corrupt(root)
    with pytest.raises(DatasetError) as e:
        Dataset(root)
    msg = str(e.value)
    assert str(bad_file) in msg and "\n" not in msg
    # The CLI reader: non-zero exit, one line, no traceback.
    p = subprocess.run([sys.executable, "-m", "clamkit.record.cli", "info", str(root)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and str(bad_file) in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_info_prints_a_summary(tmp_path):
    root = tmp_path / "d"
    time_indexed_dataset(root)
    p = subprocess.run([sys.executable, "-m", "clamkit.record.cli", "info", str(root)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["episodes"] == 2


def test_unknown_version_and_not_a_dataset(tmp_path):
    root = tmp_path / "d"
    time_indexed_dataset(root)
    m = json.loads((root / "meta.json").read_text())
    m["version"] = 99
    (root / "meta.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="version 99"):
        Dataset(root)
    with pytest.raises(DatasetError, match="no such dataset"):
        Dataset(tmp_path / "nope")


def test_meta_json_is_readable_by_others(tmp_path):
    time_indexed_dataset(tmp_path / "d")
    assert (tmp_path / "d" / "meta.json").stat().st_mode & 0o044 == 0o044


def test_streamed_episode_equals_add_episode_and_abort_leaves_nothing(tmp_path):
    """begin_episode(): chunks of steps give the same files, crc32 and stats as one add_episode; an abort
    (or an exception inside the block) leaves the dataset as it was; one episode at a time."""
    obs_spec = ObservationSpec({"image": ArraySpec((4, 5, 3), "uint8"), "state": ArraySpec((2,), "float32")})
    act = ActionSpec(2, (-1, -1), (1, 1))
    rng = np.random.default_rng(0)
    img, st, a = rng.integers(0, 255, (9, 4, 5, 3), dtype=np.uint8), rng.standard_normal((9, 2)).astype(np.float32), rng.uniform(-1, 1, (8, 2))
    one = DatasetWriter(tmp_path / "one", observation=obs_spec, action=act, fps=5, robot="r")
    one.add_episode({"image": img, "state": st}, a)
    two = DatasetWriter(tmp_path / "two", observation=obs_spec, action=act, fps=5, robot="r")
    with two.begin_episode() as ep:
        for i in range(0, 9, 4):
            ep.add_observations({"image": img[i:i + 4], "state": st[i:i + 4]})
        ep.add_actions(a[:3])
        ep.add_actions(a[3:])
        with pytest.raises(DatasetError, match="already being written"):
            two.begin_episode()
        ep.commit()
    with pytest.raises(ValueError):
        with two.begin_episode() as ep:
            ep.add_observations({"image": img[:3], "state": st[:3]})
            raise ValueError("a failing source")
    d1, d2 = Dataset(tmp_path / "one"), Dataset(tmp_path / "two")
    assert len(d2) == 1 and not list((tmp_path / "two" / "episodes").glob(".tmp-*"))
    assert d1.episodes[0]["crc32"] == d2.episodes[0]["crc32"]
    np.testing.assert_allclose(d1.stats["image"]["mean"], d2.stats["image"]["mean"])
    d2.verify_episode(0)
    np.testing.assert_array_equal(d2.episode(0)["image"], img)
    with DatasetWriter(tmp_path / "two", observation=obs_spec, action=act, fps=5, robot="r").begin_episode() as ep:
        ep.add_observations({"image": img[:3], "state": st[:3]})
        with pytest.raises(DatasetError, match="expected \\(2, 2\\)"):
            ep.add_actions(a[:3])
            ep.commit()


@pytest.mark.parametrize("keep", [0, 3, 5, 9, 40, 127, 130])
def test_truncated_npy_names_a_reason(tmp_path, keep):
    """Regression: a .npy cut inside its header was reported as "(ValueError: )" or as pickled data."""
    from synthetic import write_linear

    from clamkit.dataset import Dataset, DatasetError

    root = write_linear(tmp_path / "d", "expert", 1)
    f = Dataset(root).episode_file(0, "state")
    f.write_bytes(f.read_bytes()[:keep])
    with pytest.raises(DatasetError) as e:
        Dataset(root).episode(0)
    reason = str(e.value).split("unreadable or truncated (", 1)[1]
    assert len(reason) > 12 and "pickle" not in reason and "\n" not in str(e.value)
