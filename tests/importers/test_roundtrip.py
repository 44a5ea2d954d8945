"""Each importer on inputs written by the real libraries: frames, actions, fps and episode boundaries survive."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from import_inputs import (LENGTHS, frame, frame_index, write_lerobot, write_rlds, write_robomimic, write_video)

from clamkit.dataset import Dataset
from clamkit.importers.cli import main


def run(*args) -> dict:
    res = CliRunner().invoke(main, [*map(str, args), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output.strip().splitlines()[-1])


def test_videos_folder_mp4_webm_avi_and_image_folder(tmp_path):
    src = tmp_path / "vids"
    src.mkdir()
    write_video(src / "a.mp4", 20, fps=10)
    write_video(src / "b.webm", 13, fps=10, codec="libvpx")
    write_video(src / "c.avi", 9, fps=10, codec="mpeg4")
    (src / "d").mkdir()
    from import_inputs import encode_image

    for i in range(6):
        (src / "d" / f"img_{i:04d}.png").write_bytes(encode_image(frame(i), "png"))
    out = run("videos", src, "--out", tmp_path / "ds", "--size", "16", "--fps", "10")
    assert out["episodes"] == 4 and out["frames"] == 20 + 13 + 9 + 6
    ds = Dataset(tmp_path / "ds")
    assert ds.fps == 10 and ds.action is None and ds.observation.keys["image"].shape == (16, 16, 3)
    assert [e["length"] for e in ds.episodes] == [20, 13, 9, 6] and not any(e["labelled"] for e in ds.episodes)
    for i in range(len(ds)):
        ds.verify_episode(i)
        got = [frame_index(f) for f in ds.episode(i)["image"]]
        assert got == list(range(len(got))), (i, got)  # every frame, in order, within codec tolerance


def test_videos_native_rate_and_resampling(tmp_path):
    src = tmp_path / "vids"
    src.mkdir()
    write_video(src / "a.mp4", 30, fps=10)
    run("videos", src, "--out", tmp_path / "native", "--size", "32")
    ds = Dataset(tmp_path / "native")
    assert ds.fps == 10 and ds.episodes[0]["length"] == 30
    diff = np.abs(ds.episode(0)["image"][5].astype(int) - frame(5).astype(int))
    assert diff.mean() < 2 and diff.max() <= 24  # H.264 at its default quality: codec tolerance
    run("videos", src, "--out", tmp_path / "half", "--size", "32", "--fps", "5")
    half = Dataset(tmp_path / "half")
    assert half.fps == 5 and half.episodes[0]["length"] == 15
    assert [frame_index(f) for f in half.episode(0)["image"]] == list(range(0, 30, 2))


def test_variable_frame_rate_video_resampled_by_timestamp(tmp_path):
    src = tmp_path / "vfr"
    src.mkdir()
    times = np.cumsum([0] + [0.1, 0.2] * 5)[:11]  # frames 100 ms and 200 ms apart
    write_video(src / "phone.mp4", 11, fps=10, times=times)
    res = CliRunner().invoke(main, ["videos", str(src), "--out", str(tmp_path / "x"), "--quiet"])
    assert res.exit_code == 2 and "variable frame rate" in res.output
    run("videos", src, "--out", tmp_path / "ok", "--size", "32", "--fps", "10")
    ds = Dataset(tmp_path / "ok")
    idx = [frame_index(f) for f in ds.episode(0)["image"]]
    assert len(idx) == round(times[-1] * 10) + 1  # one frame per 100 ms tick over the clip
    assert idx == sorted(idx) and set(idx) == set(range(11))  # held frames repeat, none is lost


def test_lerobot_v3_import_keeps_actions_state_fps_and_boundaries(tmp_path):
    truth = write_lerobot(tmp_path / "lr")
    out = run("lerobot", tmp_path / "lr", "--out", tmp_path / "ds", "--size", "native")
    assert out["episodes"] == len(LENGTHS) and out["labelled"]
    ds = Dataset(tmp_path / "ds")
    assert ds.fps == 10 and ds.robot if hasattr(ds, "robot") else ds.meta["robot"] == "so101_follower"
    assert [e["length"] for e in ds.episodes] == list(LENGTHS)
    for e in range(len(LENGTHS)):
        ds.verify_episode(e)
        arr = ds.episode(e)
        np.testing.assert_array_equal(arr["state"], truth["state"][e])
        np.testing.assert_array_equal(arr["action"], truth["action"][e][:-1])  # T-1 actions: a_t between o_t, o_t+1
        assert [frame_index(f) for f in arr["image"]] == [t + 3 * e for t in range(LENGTHS[e])]
        assert ds.episodes[e]["task"] == "pick the cube"
    assert ds.meta["info"]["camera"] == "observation.images.top"


def test_export_lerobot_reads_back_identically(tmp_path):
    write_lerobot(tmp_path / "lr")
    run("lerobot", tmp_path / "lr", "--out", tmp_path / "a", "--size", "native", "--semantics", "ee_delta_xyz_rpy+gripper")
    out = run("export-lerobot", tmp_path / "a", "--out", tmp_path / "lr2", "--crf", "0")
    assert out["episodes"] == len(LENGTHS)
    info = json.loads((tmp_path / "lr2" / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["total_frames"] == sum(LENGTHS)
    assert (tmp_path / "lr2" / "videos" / "observation.images.image" / "chunk-000" / "file-000.mp4").is_file()
    run("lerobot", tmp_path / "lr2", "--out", tmp_path / "b", "--size", "native", "--semantics", "ee_delta_xyz_rpy+gripper")
    a, b = Dataset(tmp_path / "a"), Dataset(tmp_path / "b")
    assert b.fps == a.fps and b.action == a.action and b.observation == a.observation
    assert [e["length"] for e in b.episodes] == [e["length"] for e in a.episodes]
    for e in range(len(a)):
        np.testing.assert_array_equal(b.episode(e)["state"], a.episode(e)["state"])
        np.testing.assert_array_equal(b.episode(e)["action"], a.episode(e)["action"])
        diff = np.abs(b.episode(e)["image"].astype(int) - a.episode(e)["image"].astype(int))
        assert diff.mean() < 2 and diff.max() <= 24  # yuv420p chroma subsampling: codec tolerance


def test_robomimic_hdf5_with_next_obs_keeps_every_action(tmp_path):
    truth = write_robomimic(tmp_path / "demo.hdf5")
    out = run("hdf5", tmp_path / "demo.hdf5", "--out", tmp_path / "ds", "--size", "native")
    assert out["fps"] == 20 and out["image"] == "agentview_image"
    ds = Dataset(tmp_path / "ds")
    assert [e["length"] for e in ds.episodes] == [11, 7]  # T steps + the closing next_obs
    for e in range(2):
        np.testing.assert_array_equal(ds.episode(e)["image"], truth["obs"][e])
        np.testing.assert_allclose(ds.episode(e)["action"], truth["actions"][e], rtol=1e-6)
        np.testing.assert_allclose(ds.episode(e)["state"][:, :3], truth["pos"][e], rtol=1e-6)
    assert ds.observation.keys["state"].shape == (7,)  # eef pos + quat (no gripper key in this file)
    run("hdf5", tmp_path / "demo.hdf5", "--out", tmp_path / "train", "--filter", "train", "--size", "42")
    assert len(Dataset(tmp_path / "train")) == 1 and Dataset(tmp_path / "train").observation.keys["image"].shape == (42, 42, 3)


def test_robomimic_without_next_obs_drops_the_last_action(tmp_path):
    truth = write_robomimic(tmp_path / "demo.hdf5", next_obs=False)
    run("hdf5", tmp_path / "demo.hdf5", "--out", tmp_path / "ds", "--size", "native")
    ds = Dataset(tmp_path / "ds")
    assert [e["length"] for e in ds.episodes] == [10, 6]
    np.testing.assert_allclose(ds.episode(0)["action"], truth["actions"][0][:-1], rtol=1e-6)


@pytest.mark.parametrize("sequence_example", [False, True])
def test_rlds_bridge_episodes_map_to_widowx_actions(tmp_path, sequence_example):
    truths = write_rlds(tmp_path / "bridge_dataset" / "1.0.0", sequence_example=sequence_example)
    out = run("rlds", tmp_path / "bridge_dataset" / "1.0.0", "--out", tmp_path / "ds", "--size", "native")
    assert out["action_map"] == "bridge" and out["episodes"] == 3
    ds = Dataset(tmp_path / "ds")
    assert ds.fps == 5 and ds.meta["robot"] == "widowx"
    assert ds.action.semantics == "ee_delta_xyz_rpy+gripper" and ds.action.dim == 7
    assert "gripper" in ds.meta["info"]["action_mapping"]["transform"]
    for e, t in enumerate(truths):
        arr = ds.episode(e)
        assert ds.episodes[e]["length"] == t["T"] and ds.episodes[e]["task"] == "put the spoon in the pot"
        np.testing.assert_array_equal(arr["state"], t["state"])
        np.testing.assert_allclose(arr["action"], t["action"][:-1], rtol=1e-6)
        assert [frame_index(f) for f in arr["image"]] == [s + e for s in range(t["T"])]


def test_imported_video_trains_as_the_unlabelled_set(tmp_path):
    """README's recipe: video-imported (no actions) as --unlabelled, a labelled set from clam-record-like data."""
    pytest.importorskip("torch")
    from synthetic import LIN_ACTION  # noqa: F401 - the shared test helpers are importable

    src = tmp_path / "vids"
    src.mkdir()
    for k in range(3):
        write_video(src / f"v{k}.mp4", 12, fps=10)
    run("videos", src, "--out", tmp_path / "unl", "--size", "16")
    from clamkit.dataset import DatasetWriter
    from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

    w = DatasetWriter(tmp_path / "lab", observation=ObservationSpec({"image": ArraySpec((16, 16, 3), "uint8")}),
                      action=ActionSpec(2, (-1, -1), (1, 1), "dot"), fps=10, robot="dot")
    rng = np.random.default_rng(0)
    for k in range(2):
        w.add_episode({"image": np.stack([frame(t + k, 16, 16) for t in range(10)])}, rng.uniform(-1, 1, (9, 2)))
    from clamkit.config import load_config
    from clamkit.trainer.config import TrainConfig
    from clamkit.trainer.train import train

    import torch

    torch.set_num_threads(1)
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    cfg, _ = load_config(TrainConfig, str(root / "configs" / "smoke-image.yaml"),
                         ["lam.steps=4", "lam.eval_every=2", "idm.steps=2", "idm.eval_every=2", "policy.steps=2",
                          "policy.eval_every=2", "optim.batch_size=8", "optim.warmup=1", "data.probe_windows=16",
                          "run.progress=false", "model.channels=[4,4]", "model.image_hidden=[16]"])
    summary = train(cfg, [str(tmp_path / "unl")], [str(tmp_path / "lab")], tmp_path / "run")
    assert summary["obs"] == "image" and (tmp_path / "run" / "policy.pt").is_file()


def test_lerobot_package_dataset_is_read(tmp_path):
    lerobot = pytest.importorskip("lerobot", reason="the lerobot package is not installed (pip install lerobot) ")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # pragma: no cover - needs lerobot

    features = {"observation.state": {"dtype": "float32", "shape": (3,), "names": None},
                "action": {"dtype": "float32", "shape": (2,), "names": None},
                "observation.images.top": {"dtype": "video", "shape": (32, 32, 3), "names": ["height", "width", "channels"]}}
    ds = LeRobotDataset.create("local/test", fps=10, features=features, root=tmp_path / "lr", use_videos=True)
    for e in range(2):
        for t in range(8):
            ds.add_frame({"observation.state": np.full(3, t, np.float32), "action": np.full(2, e, np.float32),
                          "observation.images.top": frame(t), "task": "t"})
        ds.save_episode()
    ds.finalize()
    run("lerobot", tmp_path / "lr", "--out", tmp_path / "ds", "--size", "native")
    out = Dataset(tmp_path / "ds")
    assert [e["length"] for e in out.episodes] == [8, 8] and lerobot is not None
    assert [frame_index(f) for f in out.episode(1)["image"]] == list(range(8))


def test_export_tables_load_the_way_lerobot_loads_them(tmp_path):
    """LeRobot reads meta/tasks.parquet with pandas (index 'task') and the episode table's offsets; check both."""
    pd = pytest.importorskip("pandas", reason="pandas (extra 'dev') emulates LeRobot's table loading")
    write_lerobot(tmp_path / "lr")
    run("lerobot", tmp_path / "lr", "--out", tmp_path / "a", "--size", "native")
    run("export-lerobot", tmp_path / "a", "--out", tmp_path / "lr2")
    tasks = pd.read_parquet(tmp_path / "lr2" / "meta" / "tasks.parquet")
    assert tasks.index.name == "task" and int(tasks.loc["pick the cube"].task_index) == 0
    eps = pd.read_parquet(tmp_path / "lr2" / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert eps["length"].tolist() == list(LENGTHS)
    assert eps["dataset_to_index"].tolist() == np.cumsum(LENGTHS).tolist()
    key = "videos/observation.images.image"
    np.testing.assert_allclose(eps[f"{key}/to_timestamp"] - eps[f"{key}/from_timestamp"], np.array(LENGTHS) / 10)
    stats = json.loads((tmp_path / "lr2" / "meta" / "stats.json").read_text())
    assert np.asarray(stats["observation.images.image"]["mean"]).shape == (3, 1, 1) and stats["action"]["count"] == [sum(LENGTHS) - len(LENGTHS)]  # the T-1 recorded actions


def test_lerobot_image_feature_stored_in_parquet_is_decoded_exactly(tmp_path):
    """dtype "image" features (use_videos=False): PNG bytes in a {bytes, path} struct column, lossless."""
    from import_inputs import encode_image, pa, pq

    root = tmp_path / "lr"
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    lengths, rows, eps, index = (5, 4), [], [], 0
    for e, T in enumerate(lengths):
        for t in range(T):
            rows.append({"observation.image": {"bytes": encode_image(frame(t + e), "png"), "path": None},
                         "action": [float(t), float(e)], "timestamp": t / 5, "frame_index": t, "episode_index": e,
                         "index": index, "task_index": 0})
            index += 1
        eps.append({"episode_index": e, "tasks": ["t"], "length": T, "data/chunk_index": 0, "data/file_index": 0,
                    "dataset_from_index": index - T, "dataset_to_index": index})
    schema = pa.schema([("observation.image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("action", pa.list_(pa.float32())), ("timestamp", pa.float32()), ("frame_index", pa.int64()),
                        ("episode_index", pa.int64()), ("index", pa.int64()), ("task_index", pa.int64())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.Table.from_pylist(eps), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    (root / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": 5, "robot_type": "koch", "total_episodes": 2,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
        "features": {"observation.image": {"dtype": "image", "shape": [32, 32, 3], "names": ["height", "width", "channel"]},
                     "action": {"dtype": "float32", "shape": [2], "names": None}}}))
    run("lerobot", root, "--out", tmp_path / "ds", "--size", "native")
    ds = Dataset(tmp_path / "ds")
    assert [e["length"] for e in ds.episodes] == list(lengths) and ds.fps == 5
    for e, T in enumerate(lengths):
        np.testing.assert_array_equal(ds.episode(e)["image"], np.stack([frame(t + e) for t in range(T)]))
        np.testing.assert_array_equal(ds.episode(e)["action"], [[t, e] for t in range(T - 1)])
