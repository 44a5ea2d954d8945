"""Corrupted or inconsistent inputs: each gives one line "error: ..." naming the problem, exit 2, and
leaves nothing at --out (no half-written dataset, no hidden temp directory)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from import_inputs import encode_image, frame, h5py, pa, pq, tfrecord, write_lerobot, write_rlds, write_robomimic, write_video

from clamkit.importers.cli import main

CAM = "observation.images.top"


def _edit_json(path, fn):
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


def _edit_parquet(path, fn):
    t = pq.read_table(path)
    pq.write_table(fn(t), path)


def _set_col(t, name, values):
    i = t.schema.get_field_index(name)
    return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))


def _truncate(path, keep: float):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _flip(path, at: float):
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _ep_file(root):
    return root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"


def _data_file(root, i=0):
    return root / "data" / "chunk-000" / f"file-{i:03d}.parquet"


def _video(root, i=0):
    return root / "videos" / CAM / "chunk-000" / f"file-{i:03d}.mp4"


# ---- LeRobot v3 (kind "lerobot"): each case breaks a freshly written dataset
LEROBOT = {
    "no info.json": lambda r: (r / "meta" / "info.json").unlink(),
    "info.json not JSON": lambda r: (r / "meta" / "info.json").write_text("{not json"),
    "info.json a list": lambda r: (r / "meta" / "info.json").write_text("[1, 2]"),
    "codebase v2.1": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d.update(codebase_version="v2.1")),
    "fps zero": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d.update(fps=0)),
    "fps string": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d.update(fps="30")),
    "features not a dict": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d.update(features=[1])),
    "total_episodes wrong": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d.update(total_episodes=5)),
    "fps disagrees with video": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d.update(fps=15)),
    "state shape 2-D": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d["features"]["observation.state"].update(shape=[3, 1])),
    "state width wrong": lambda r: _edit_json(r / "meta" / "info.json", lambda d: d["features"]["observation.state"].update(shape=[4])),
    "no episode tables": lambda r: shutil.rmtree(r / "meta" / "episodes"),
    "episode table garbage": lambda r: _ep_file(r).write_bytes(b"PAR1 garbage"),
    "episode table truncated": lambda r: _truncate(_ep_file(r), 0.5),
    "episode table lacks length": lambda r: _edit_parquet(_ep_file(r), lambda t: t.drop(["length"])),
    "duplicate episode_index": lambda r: _edit_parquet(_ep_file(r), lambda t: _set_col(t, "episode_index", [0, 0, 2])),
    "length disagrees with rows": lambda r: _edit_parquet(_ep_file(r), lambda t: _set_col(t, "length", [13, 7, 9])),
    "missing video columns": lambda r: _edit_parquet(_ep_file(r), lambda t: t.drop([f"videos/{CAM}/from_timestamp"])),
    "from_timestamp past the end": lambda r: _edit_parquet(_ep_file(r), lambda t: _set_col(t, f"videos/{CAM}/from_timestamp", [50.0, 0.0, 1.2])),
    "data file missing": lambda r: _data_file(r, 1).unlink(),
    "data file garbage": lambda r: _data_file(r).write_bytes(b"not parquet at all"),
    "data file truncated": lambda r: _truncate(_data_file(r), 0.6),
    "data lacks action column": lambda r: _edit_parquet(_data_file(r), lambda t: t.drop(["action"])),
    "timestamps jitter (variable fps)": lambda r: _edit_parquet(_data_file(r), lambda t: _set_col(
        t, "timestamp", (np.asarray(t["timestamp"].to_pylist()) * np.r_[1.0, [1.5] * (len(t) - 1)]).astype(np.float32).tolist())),
    "frame_index out of order": lambda r: _edit_parquet(_data_file(r), lambda t: _set_col(t, "frame_index", list(reversed(t["frame_index"].to_pylist())))),
    "NaN in state": lambda r: _edit_parquet(_data_file(r), lambda t: _set_col(t, "observation.state", [[float("nan")] * 3] * len(t))),
    "NaN in action": lambda r: _edit_parquet(_data_file(r), lambda t: _set_col(t, "action", [[float("inf"), 0.0]] * len(t))),
    "state wrong width": lambda r: _edit_parquet(_data_file(r), lambda t: _set_col(t, "observation.state", [[0.0] * 2] * len(t))),
    "video missing": lambda r: _video(r).unlink(),
    "video garbage": lambda r: _video(r).write_bytes(b"\x00" * 4096),
    "video truncated": lambda r: _truncate(_video(r), 0.5),
    "video too short": lambda r: write_video(_video(r), 5),
    "video unsupported codec": lambda r: _video(r).write_bytes(_video(r).read_bytes().replace(b"avc1", b"zzzz")),
}

# ---- videos folder (kind "videos")
VIDEOS = {
    "empty folder": lambda d: None,
    "mixed frame rates": lambda d: (write_video(d / "a.mp4", 10, fps=10), write_video(d / "b.mp4", 10, fps=25)),
    "variable frame rate": lambda d: write_video(d / "a.mp4", 9, fps=10, times=np.cumsum([0] + [0.1, 0.25] * 4)[:9]),
    "truncated mp4": lambda d: (write_video(d / "a.mp4", 30), _truncate(d / "a.mp4", 0.5)),
    "garbage mp4": lambda d: (d / "a.mp4").write_bytes(b"\x00\x01" * 3000),
    "truncated faststart mp4": lambda d: (write_video(d / "a.mp4", 40, faststart=True), _truncate(d / "a.mp4", 0.6)),
    "truncated faststart mp4, resampled": lambda d: (write_video(d / "a.mp4", 40, faststart=True), _truncate(d / "a.mp4", 0.6)),
    "one-frame video": lambda d: write_video(d / "a.mp4", 1),
    "image folder gap": lambda d: [(d / "seq").mkdir()] + [(d / "seq" / f"{i:03d}.png").write_bytes(encode_image(frame(i), "png")) for i in (0, 1, 3)],
    "image folder without numbers": lambda d: [(d / "seq").mkdir(), (d / "seq" / "a.png").write_bytes(encode_image(frame(0), "png")),
                                                (d / "seq" / "b.png").write_bytes(encode_image(frame(1), "png"))],
    "corrupt image": lambda d: [(d / "seq").mkdir(), (d / "seq" / "000.png").write_bytes(encode_image(frame(0), "png")),
                                (d / "seq" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")],
    "duplicate frame numbers": lambda d: [(d / "seq").mkdir(), (d / "seq" / "1.png").write_bytes(encode_image(frame(0), "png")),
                                          (d / "seq" / "001.png").write_bytes(encode_image(frame(1), "png"))],
}

# ---- robomimic HDF5 (kind "hdf5")


def _h5(fn):
    def edit(path):
        with h5py.File(path, "a") as f:
            fn(f)
    return edit


HDF5 = {
    "not HDF5": lambda p: p.write_bytes(b"plain text, not hdf5"),
    "truncated HDF5": lambda p: _truncate(p, 0.3),
    "no data group": _h5(lambda f: f.move("data", "stuff")),
    "demo misnamed": _h5(lambda f: f.move("data/demo_1", "data/episode_1")),
    "no demos": _h5(lambda f: [f["data"].pop(k) for k in list(f["data"])]),
    "actions length mismatch": _h5(lambda f: (f["data/demo_1"].pop("actions"), f["data/demo_1"].create_dataset("actions", data=np.zeros((3, 7))))),
    "obs keys of unequal length": _h5(lambda f: (f["data/demo_0/obs"].pop("robot0_eef_pos"), f["data/demo_0/obs"].create_dataset("robot0_eef_pos", data=np.zeros((4, 3))))),
    "missing obs key in a later demo": _h5(lambda f: f["data/demo_1/obs"].pop("robot0_eef_quat")),
    "num_samples disagrees": _h5(lambda f: f["data/demo_0"].attrs.__setitem__("num_samples", 99)),
    "NaN actions": _h5(lambda f: f["data/demo_0/actions"].__setitem__((slice(None), slice(None)), np.nan)),
    "action width differs": _h5(lambda f: (f["data/demo_1"].pop("actions"), f["data/demo_1"].create_dataset("actions", data=np.zeros((6, 3))))),
    "image not uint8": _h5(lambda f: (f["data/demo_0/obs"].pop("agentview_image"), f["data/demo_0/obs"].create_dataset("agentview_image", data=np.zeros((10, 84, 84, 3), np.float32)))),
    "env_args not JSON": _h5(lambda f: f["data"].attrs.__setitem__("env_args", "{oops")),
    "control_freq negative": _h5(lambda f: f["data"].attrs.__setitem__("env_args", json.dumps({"env_kwargs": {"control_freq": -5}}))),
}

# ---- RLDS TFRecord (kind "rlds")


def _shard(d, i=0):
    return sorted(d.glob("*.tfrecord*"))[i]


def _rewrite(d, feats_fn, T=5):
    from import_inputs import rlds_episode

    for p in d.glob("*.tfrecord*"):
        p.unlink()
    w = tfrecord.TFRecordWriter(str(d / "bridge_dataset-train.tfrecord-00000-of-00001"))
    feats, _ = rlds_episode(T, 0)
    feats_fn(feats)
    w.write(feats)
    w.close()


RLDS = {
    "no shards": lambda d: [p.unlink() for p in d.glob("*.tfrecord*")],
    "truncated record": lambda d: _truncate(_shard(d), 0.7),
    "flipped byte in data": lambda d: _flip(_shard(d), 0.5),
    "flipped byte in length": lambda d: _flip(_shard(d), 0.0),
    "not a TFRecord": lambda d: _shard(d).write_bytes(b"hello world, this is not a tfrecord file at all"),
    "is_first wrong": lambda d: _rewrite(d, lambda f: f.update({"steps/is_first": ([1, 0, 1, 0, 0], "int")})),
    "is_last missing at end": lambda d: _rewrite(d, lambda f: f.update({"steps/is_last": ([0] * 5, "int")})),
    "fewer images than steps": lambda d: _rewrite(d, lambda f: f.update({"steps/observation/image_0": (f["steps/observation/image_0"][0][:4], "byte")})),
    "action values not steps x 7": lambda d: _rewrite(d, lambda f: f.update({"steps/action": (f["steps/action"][0][:-3], "float")})),
    "state values not steps x 7": lambda d: _rewrite(d, lambda f: f.update({"steps/observation/state": (f["steps/observation/state"][0][:-1], "float")})),
    "corrupt JPEG": lambda d: _rewrite(d, lambda f: f.update({"steps/observation/image_0": ([b"\xff\xd8garbage"] * 5, "byte")})),
    "NaN action": lambda d: _rewrite(d, lambda f: f.update({"steps/action": ([float("nan")] * 35, "float")})),
    "one-step episode": lambda d: _rewrite(d, lambda f: None, T=1),
    "features.json not JSON": lambda d: (d / "features.json").write_text("{"),
}

CASES = [("lerobot", k) for k in LEROBOT] + [("videos", k) for k in VIDEOS] + [("hdf5", k) for k in HDF5] + \
        [("rlds", k) for k in RLDS]

# What each message must say (the file is named too; see the test): the problem, not just "error".
EXPECT = {
    "lerobot:no info.json": "info.json: missing", "lerobot:info.json not JSON": "not valid JSON",
    "lerobot:info.json a list": "not a JSON object", "lerobot:codebase v2.1": "codebase_version 'v2.1'",
    "lerobot:fps zero": "fps 0 is not", "lerobot:fps string": "fps '30' is not", "lerobot:features not a dict": "features must map",
    "lerobot:total_episodes wrong": "total_episodes is 5", "lerobot:fps disagrees with video": "is not frame_index / fps",
    "lerobot:state shape 2-D": "only vectors", "lerobot:state width wrong": "width 4",
    "lerobot:no episode tables": "no chunk-*/file-*.parquet", "lerobot:episode table garbage": "not a readable parquet",
    "lerobot:episode table truncated": "not a readable parquet", "lerobot:episode table lacks length": "no column(s) ['length']",
    "lerobot:duplicate episode_index": "missing or duplicate episode rows", "lerobot:length disagrees with rows": "says length 13",
    "lerobot:missing video columns": "from_timestamp", "lerobot:from_timestamp past the end": "timestamps past its end",
    "lerobot:data file missing": "file-001.parquet: missing", "lerobot:data file garbage": "not a readable parquet",
    "lerobot:data file truncated": "not a readable parquet", "lerobot:data lacks action column": "no column(s) ['action']",
    "lerobot:timestamps jitter (variable fps)": "variable fps", "lerobot:frame_index out of order": "frame_index is not",
    "lerobot:NaN in state": "state contains NaN", "lerobot:NaN in action": "action contains NaN",
    "lerobot:state wrong width": "24 values for 12 frames", "lerobot:video missing": "missing video file",
    "lerobot:video garbage": "not a readable video", "lerobot:video truncated": "not a readable video",
    "lerobot:video too short": "ends after 5 of 12", "lerobot:video unsupported codec": "unsupported codec",
    "videos:empty folder": "no video files", "videos:mixed frame rates": "pass --fps to resample",
    "videos:variable frame rate": "variable frame rate", "videos:truncated mp4": "not a readable video",
    "videos:garbage mp4": "not a readable video",
    "videos:truncated faststart mp4": "corrupt or truncated",
    "videos:truncated faststart mp4, resampled": "corrupt or truncated", "videos:one-frame video": "needs at least 2",
    "videos:image folder gap": "frame 2 is missing", "videos:image folder without numbers": "no frame number",
    "videos:corrupt image": "not a decodable image", "videos:duplicate frame numbers": "frame number 1",
    "hdf5:not HDF5": "not a readable HDF5", "hdf5:truncated HDF5": "not a readable HDF5", "hdf5:no data group": "no 'data' group",
    "hdf5:demo misnamed": "not named demo_N", "hdf5:no demos": "no demos", "hdf5:actions length mismatch": "actions has 3 steps",
    "hdf5:obs keys of unequal length": "has 4 steps", "hdf5:missing obs key in a later demo": "missing 'robot0_eef_quat'",
    "hdf5:num_samples disagrees": "num_samples is 99", "hdf5:NaN actions": "NaN or Inf", "hdf5:action width differs": "width is 7",
    "hdf5:image not uint8": "uint8", "hdf5:env_args not JSON": "is not JSON", "hdf5:control_freq negative": "control_freq -5",
    "rlds:no shards": "no *-train.tfrecord* shards", "rlds:truncated record": "truncated in record",
    "rlds:flipped byte in data": "crc32c mismatch", "rlds:flipped byte in length": "corrupt record length",
    "rlds:not a TFRecord": "corrupt record length", "rlds:is_first wrong": "episode boundaries inconsistent",
    "rlds:is_last missing at end": "episode boundaries inconsistent", "rlds:fewer images than steps": "4 images for 5 steps",
    "rlds:action values not steps x 7": "steps/action has 32 values", "rlds:state values not steps x 7": "has 34 values",
    "rlds:corrupt JPEG": "not a decodable image", "rlds:NaN action": "NaN or Inf", "rlds:one-step episode": "needs at least 2",
    "rlds:features.json not JSON": "not valid JSON",
}


def test_at_least_fifty_cases():
    assert len(CASES) >= 50 and set(EXPECT) == {f"{k}:{c}" for k, c in CASES}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One clean input of each kind, copied per case (built once: the writers cost seconds)."""
    d = tmp_path_factory.mktemp("pristine")
    write_lerobot(d / "lerobot")
    write_robomimic(d / "demo.hdf5")
    write_rlds(d / "rlds", lengths=(5, 6), shards=1)
    return d


@pytest.mark.parametrize("kind,case", CASES, ids=[f"{k}:{c}" for k, c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(kind, case, pristine, tmp_path):
    if kind == "lerobot":
        src = tmp_path / "in"
        shutil.copytree(pristine / "lerobot", src)
        LEROBOT[case](src)
        args = ["lerobot", str(src), "--size", "native"]
    elif kind == "videos":
        src = tmp_path / "in"
        src.mkdir()
        VIDEOS[case](src)
        args = ["videos", str(src), "--size", "16"] + (["--fps", "10"] if "image" in case or "frame numbers" in case else []) + \
            (["--fps", "5"] if "resampled" in case else [])
    elif kind == "hdf5":
        src = tmp_path / "in.hdf5"
        shutil.copy(pristine / "demo.hdf5", src)
        HDF5[case](src)
        args = ["hdf5", str(src), "--size", "native"]
    else:
        src = tmp_path / "in"
        shutil.copytree(pristine / "rlds", src)
        RLDS[case](src)
        args = ["rlds", str(src), "--size", "native"]
    out = tmp_path / "out"
    res = CliRunner().invoke(main, args + ["--out", str(out), "--quiet"])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert EXPECT[f"{kind}:{case}"] in lines[0], lines[0]
    assert "/in" in lines[0]  # names the input file or folder
    assert not out.exists(), "a failed import left a dataset behind"
    assert not list(tmp_path.glob(".out.importing-*")), "a failed import left its temp directory"


def test_interrupted_import_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C half-way (after the first episode was written): exit 130 and no dataset at --out."""
    src = tmp_path / "vids"
    src.mkdir()
    for k in range(3):
        write_video(src / f"v{k}.mp4", 8)
    from clamkit.dataset import EpisodeStream

    real = EpisodeStream.commit
    calls = []

    def commit(self, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, **kw)

    monkeypatch.setattr(EpisodeStream, "commit", commit)
    res = CliRunner().invoke(main, ["videos", str(src), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 130 and "interrupted" in res.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.importing-*"))


def test_existing_out_is_refused_untouched(tmp_path):
    src = tmp_path / "vids"
    src.mkdir()
    write_video(src / "a.mp4", 8)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    res = CliRunner().invoke(main, ["videos", str(src), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 2 and "already exists" in res.output
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_real_ctrl_c_mid_video_leaves_nothing(tmp_path):
    """SIGINT to a real clam-import process while it decodes: exit 130, no --out, no temp directory."""
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "vids"
    src.mkdir()
    write_video(src / "long.mp4", 3000, fps=30, h=84, w=84)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "clamkit.importers.cli", "videos", str(src), "--out", str(out), "--size", "84",
                             "--quiet"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal,
    deadline = time.time() + 60  # also when this test runs in a background job (which starts with SIGINT ignored)
    while not list(tmp_path.glob(".out.importing-*/episodes/.tmp-*/image.npy")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert not out.exists() and not list(tmp_path.glob(".out.importing-*"))
