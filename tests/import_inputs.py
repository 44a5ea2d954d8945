"""Builders for the importer tests (importable as `import_inputs`): inputs in the other tools' exact public layouts,
mp4/webm with PyAV, LeRobot v3 with pyarrow + PyAV, robomimic HDF5 with h5py, RLDS TFRecord with `tfrecord`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV (extra 'import') is needed to build and read video inputs")
pa = pytest.importorskip("pyarrow", reason="pyarrow (extra 'import')")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (extra 'import')")
h5py = pytest.importorskip("h5py", reason="h5py (extra 'import')")
tfrecord = pytest.importorskip("tfrecord", reason="tfrecord (extra 'import')")


def frame(i: int, h: int = 32, w: int = 32) -> np.ndarray:
    """A frame whose brightness encodes its index (survives lossy codecs): value 6*i (i < 41), a bright square moving right."""
    img = np.full((h, w, 3), (6 * i) % 246, np.uint8)
    x = (2 * i) % (w - 6)
    img[4:10, x:x + 6] = 250
    return img


def frame_index(img: np.ndarray) -> int:
    """Inverse of frame(): the index from the background brightness (bottom-left corner, away from the square)."""
    return int(round(float(np.asarray(img)[-4:, :4].mean()) / 6))


def write_video(path: Path, n: int, fps: int = 10, codec: str = "libx264", h: int = 32, w: int = 32, times=None,
                pix_fmt: str = "yuv420p", faststart: bool = False) -> Path:
    """A real video file; `times` (seconds per frame) makes a variable-frame-rate one; faststart puts the
    index (moov) first, so a truncated file still opens and the damage shows only while decoding."""
    from fractions import Fraction

    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.bit_rate = 4_000_000  # high quality, so a frame's index survives every codec (mpeg4's default is coarse)
        if times is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            f = av.VideoFrame.from_ndarray(frame(i, h, w), format="rgb24")
            f.pts = int(round(times[i] * 1000)) if times is not None else i
            if times is not None:
                f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def encode_image(img: np.ndarray, codec: str = "mjpeg") -> bytes:
    """One JPEG (mjpeg) or PNG (png) image, encoded by FFmpeg through PyAV."""
    buf = io.BytesIO()
    fmt = {"mjpeg": "yuvj420p", "png": "rgb24"}[codec]
    with av.open(buf, "w", format="image2pipe") as c:
        s = c.add_stream(codec)
        s.width, s.height, s.pix_fmt = img.shape[1], img.shape[0], fmt
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=fmt)):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


# ----------------------------------------------------------------------------- LeRobot v3


LENGTHS = (12, 7, 9)


def write_lerobot(root: Path, lengths=LENGTHS, fps: int = 10, state_dim: int = 3, action_dim: int = 2, seed: int = 0,
                  files: int = 2) -> dict:
    """A LeRobotDataset v3 directory as lerobot >= 0.4 lays it out: episodes concatenated in data/ parquet and
    videos/ mp4 files (split over `files` files to exercise file indices), meta/episodes parquet with offsets."""
    rng = np.random.default_rng(seed)
    truth = {"state": [], "action": [], "lengths": list(lengths)}
    per_file = [list(range(len(lengths)))[f::files] for f in range(files)]
    ep_rows, index = [None] * len(lengths), 0
    cam = "observation.images.top"
    for fi, eps in enumerate(per_file):
        rows = {k: [] for k in ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index")}
        vdir = root / "videos" / cam / "chunk-000"
        vdir.mkdir(parents=True, exist_ok=True)
        with av.open(str(vdir / f"file-{fi:03d}.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
            pts = 0
            for e in sorted(eps):
                T = lengths[e]
                st = rng.standard_normal((T, state_dim)).astype(np.float32)
                ac = rng.uniform(-1, 1, (T, action_dim)).astype(np.float32)
                truth["state"].append((e, st))
                truth["action"].append((e, ac))
                start = pts
                for t in range(T):
                    f = av.VideoFrame.from_ndarray(frame(t + 3 * e), format="rgb24")
                    f.pts = pts
                    pts += 1
                    for p in s.encode(f):
                        c.mux(p)
                rows["observation.state"] += list(st)
                rows["action"] += list(ac)
                rows["timestamp"] += list((np.arange(T) / fps).astype(np.float32))
                rows["frame_index"] += list(range(T))
                rows["episode_index"] += [e] * T
                rows["index"] += list(range(index, index + T))
                rows["task_index"] += [0] * T
                ep_rows[e] = {"episode_index": e, "tasks": ["pick the cube"], "length": T, "data/chunk_index": 0,
                              "data/file_index": fi, "dataset_from_index": index, "dataset_to_index": index + T,
                              f"videos/{cam}/chunk_index": 0, f"videos/{cam}/file_index": fi,
                              f"videos/{cam}/from_timestamp": start / fps, f"videos/{cam}/to_timestamp": pts / fps,
                              "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
                index += T
            for p in s.encode():
                c.mux(p)
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        table = pa.table({"observation.state": pa.array([list(x) for x in rows["observation.state"]], pa.list_(pa.float32())),
                          "action": pa.array([list(x) for x in rows["action"]], pa.list_(pa.float32())),
                          "timestamp": pa.array(rows["timestamp"], pa.float32()),
                          **{k: pa.array(rows[k], pa.int64()) for k in ("frame_index", "episode_index", "index", "task_index")}})
        pq.write_table(table, root / "data" / "chunk-000" / f"file-{fi:03d}.parquet")
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(ep_rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["pick the cube"]}), root / "meta" / "tasks.parquet")
    info = {"codebase_version": "v3.0", "robot_type": "so101_follower", "total_episodes": len(lengths),
            "total_frames": sum(lengths), "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(lengths)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": {cam: {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channels"]},
                         "observation.state": {"dtype": "float32", "shape": [state_dim], "names": None},
                         "action": {"dtype": "float32", "shape": [action_dim], "names": None},
                         "timestamp": {"dtype": "float32", "shape": [1], "names": None},
                         "frame_index": {"dtype": "int64", "shape": [1], "names": None},
                         "episode_index": {"dtype": "int64", "shape": [1], "names": None},
                         "index": {"dtype": "int64", "shape": [1], "names": None},
                         "task_index": {"dtype": "int64", "shape": [1], "names": None}}}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    truth["state"] = [s for _, s in sorted(truth["state"], key=lambda x: x[0])]
    truth["action"] = [a for _, a in sorted(truth["action"], key=lambda x: x[0])]
    return truth


# ----------------------------------------------------------------------------- robomimic


def write_robomimic(path: Path, lengths=(10, 6), seed: int = 0, next_obs: bool = True) -> dict:
    """robomimic's HDF5 layout: data/demo_N/{actions, obs/<key>, next_obs/<key>}, env_args, mask/."""
    rng = np.random.default_rng(seed)
    truth = {"obs": [], "actions": [], "pos": []}
    with h5py.File(path, "w") as f:
        g = f.create_group("data")
        g.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}})
        g.attrs["total"] = sum(lengths)
        for i, T in enumerate(lengths):
            d = g.create_group(f"demo_{i}")
            d.attrs["num_samples"] = T
            img = np.stack([frame(t + 5 * i, 84, 84) for t in range(T + 1)])
            pos = rng.standard_normal((T + 1, 3))
            quat = rng.standard_normal((T + 1, 4))
            act = rng.uniform(-1, 1, (T, 7))
            d["actions"] = act
            d["rewards"] = np.zeros(T)
            d["dones"] = np.zeros(T, np.int64)
            for grp, sl in (("obs", slice(0, T)), ("next_obs", slice(1, T + 1))):
                if grp == "next_obs" and not next_obs:
                    continue
                d[f"{grp}/agentview_image"] = img[sl]
                d[f"{grp}/robot0_eef_pos"] = pos[sl]
                d[f"{grp}/robot0_eef_quat"] = quat[sl]
            truth["obs"].append(img if next_obs else img[:T])
            truth["actions"].append(act)
            truth["pos"].append(pos if next_obs else pos[:T])
        f["mask/train"] = np.array([f"demo_{i}".encode() for i in range(len(lengths))][:1])
    return truth


# ----------------------------------------------------------------------------- RLDS / OXE


def rlds_episode(T: int, seed: int, image_codec: str = "mjpeg") -> tuple[dict, dict]:
    """BridgeData V2's per-episode tf.train.Example features (steps flattened), and the truth."""
    rng = np.random.default_rng(seed)
    state = rng.standard_normal((T, 7)).astype(np.float32)
    action = rng.uniform(-0.02, 0.02, (T, 7)).astype(np.float32)
    action[:, 6] = rng.uniform(0, 1, T)
    imgs = [encode_image(frame(t + seed, 32, 32), image_codec) for t in range(T)]
    feats = {"steps/observation/image_0": (imgs, "byte"), "steps/observation/state": (state.ravel().tolist(), "float"),
             "steps/action": (action.ravel().tolist(), "float"), "steps/is_first": ([1] + [0] * (T - 1), "int"),
             "steps/is_last": ([0] * (T - 1) + [1], "int"), "steps/is_terminal": ([0] * (T - 1) + [1], "int"),
             "steps/reward": ([0.0] * T, "float"), "steps/discount": ([1.0] * T, "float"),
             "steps/language_instruction": ([b"put the spoon in the pot"] * T, "byte"),
             "episode_metadata/file_path": ([f"/raw/traj{seed}".encode()], "byte")}
    return feats, {"state": state, "action": action, "T": T}


BRIDGE_FEATURES = {"featuresDict": {"features": {"steps": {"sequence": {"feature": {"featuresDict": {"features": {
    "action": {"tensor": {"shape": {"dimensions": ["7"]}, "dtype": "float32"}},
    "observation": {"featuresDict": {"features": {
        "image_0": {"image": {"shape": {"dimensions": ["32", "32", "3"]}, "dtype": "uint8", "encodingFormat": "jpeg"}},
        "state": {"tensor": {"shape": {"dimensions": ["7"]}, "dtype": "float32"}}}}}}}}, "length": "-1"}}}}}


def write_rlds(folder: Path, lengths=(5, 8, 6), shards: int = 2, sequence_example: bool = False) -> list[dict]:
    """A TFDS-prepared RLDS directory like bridge_dataset/1.0.0: shards of one Example per episode."""
    folder.mkdir(parents=True, exist_ok=True)
    truths, writers = [], [tfrecord.TFRecordWriter(str(folder / f"bridge_dataset-train.tfrecord-{s:05d}-of-{shards:05d}"))
                           for s in range(shards)]
    for i, T in enumerate(lengths):
        feats, truth = rlds_episode(T, seed=i)
        w = writers[i * shards // len(lengths)]
        if sequence_example:  # per-step values in feature_lists, episode metadata in the context
            ctx = {k: v for k, v in feats.items() if not k.startswith("steps/")}
            seq = {}
            for k, (vals, kind) in feats.items():
                if k.startswith("steps/"):
                    n = len(vals) // T
                    seq[k] = ([vals[t * n:(t + 1) * n] if n > 1 else [vals[t]] for t in range(T)], kind)
            w.write(ctx, seq)
        else:
            w.write(feats)
        truths.append(truth)
    for w in writers:
        w.close()
    (folder / "features.json").write_text(json.dumps(BRIDGE_FEATURES))
    (folder / "dataset_info.json").write_text(json.dumps({"name": "bridge_dataset", "fileFormat": "tfrecord", "version": "1.0.0"}))
    return truths
