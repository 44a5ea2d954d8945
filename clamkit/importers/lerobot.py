"""LeRobotDataset v3 <-> clamkit dataset (pyarrow for the tables, PyAV for the videos; no lerobot import).

The v3 layout (LeRobot >= 0.4, huggingface/lerobot src/lerobot/datasets/utils.py):

    meta/info.json                              codebase_version "v3.0", fps, features, path templates
    meta/episodes/chunk-000/file-000.parquet    one row per episode: episode_index, tasks, length,
                                                data/{chunk,file}_index, dataset_{from,to}_index,
                                                videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp}
    meta/tasks.parquet, meta/stats.json
    data/chunk-000/file-000.parquet             one row per frame, many episodes per file: feature columns,
                                                timestamp, frame_index, episode_index, index, task_index
    videos/<key>/chunk-000/file-000.mp4         one stream per camera, episodes concatenated in time

Time convention: LeRobot frame t holds o_t and the action a_t executed at o_t, as clamkit does, so an
episode of T frames becomes T observations and its first T-1 actions; `export_lerobot` writes the last
action again on the final frame (a hold), and importing the export drops it, so the round trip is exact.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from clamkit.dataset import Dataset, DatasetWriter
from clamkit.fileio import read_json, write_json_atomic
from clamkit.errors import DatasetError, UserError, require
from clamkit.importers.common import VideoFile, atomic_output, av, chunked, decode_image, progress
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
TASKS_PATH = "meta/tasks.parquet"
CHUNKS_SIZE, DATA_MB, VIDEO_MB = 1000, 100, 200  # LeRobot's defaults: files per chunk, MB per file
TIME_TOLERANCE = 1e-3  # s: timestamps vs frame_index / fps


def _pq():
    require("pyarrow", "import")
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


def _read_table(path: Path, columns: list[str] | None = None):
    pa, pq = _pq()
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    try:
        names = pq.read_schema(path).names
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise DatasetError(f"{path}: has no column(s) {missing}")
        return pq.read_table(path, columns=columns)
    except DatasetError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable parquet file ({' '.join(str(e).split())[:200]})") from None


def _matrix(column, rows: np.ndarray, width: int, what: str) -> np.ndarray:
    """Rows of a list<float> (or scalar) column as a (n, width) float array."""
    col = column.take(rows).combine_chunks()
    try:
        flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False) if hasattr(col, "flatten") else col.to_numpy(zero_copy_only=False),
                          dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for nulls/nesting
        raise DatasetError(f"{what}: not a numeric vector column ({e})") from None
    if flat.size != len(rows) * width:
        raise DatasetError(f"{what}: {flat.size} values for {len(rows)} frames of width {width} (info.json shape)")
    return flat.reshape(len(rows), width)


class _Info:
    """meta/info.json, checked."""

    def __init__(self, root: Path):
        path = root / "meta" / "info.json"
        if not path.is_file():
            raise DatasetError(f"{path}: missing; is {root} a LeRobotDataset v3 directory?")
        d = read_json(path)
        if not isinstance(d, dict):
            raise DatasetError(f"{path}: not a JSON object")
        version = d.get("codebase_version")
        if not isinstance(version, str) or not version.startswith("v3"):
            raise DatasetError(f"{path}: codebase_version {version!r} is not supported (v3.x; convert older datasets with "
                               "lerobot's convert_dataset_v21_to_v30)")
        fps = d.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise DatasetError(f"{path}: fps {fps!r} is not a positive number")
        feats = d.get("features")
        if not isinstance(feats, dict) or not all(isinstance(f, dict) and isinstance(f.get("shape"), list) for f in feats.values()):
            raise DatasetError(f"{path}: features must map each key to {{dtype, shape, ...}}")
        for key in ("data_path", "video_path"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise DatasetError(f"{path}: {key} must be a path template string")
        self.path, self.fps, self.features = path, float(fps), feats
        self.data_path = d.get("data_path") or DATA_PATH
        self.video_path = d.get("video_path") or VIDEO_PATH
        self.robot = d.get("robot_type") or "lerobot"
        self.total_episodes = d.get("total_episodes")

    def width(self, key: str) -> int:
        shape = self.features[key]["shape"]
        if not all(isinstance(s, int) and s >= 1 for s in shape) or len(shape) != 1:
            raise DatasetError(f"{self.path}: feature {key!r} has shape {shape}; only vectors can be state or action")
        return shape[0]


def _episodes(root: Path, info: _Info, need: list[str]) -> list[dict]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{root / 'meta' / 'episodes'}: no chunk-*/file-*.parquet episode tables")
    rows = []
    for f in files:
        rows += _read_table(f, need).to_pylist()
    rows.sort(key=lambda r: r["episode_index"])
    for i, r in enumerate(rows):
        if r["episode_index"] != i:
            raise DatasetError(f"{root / 'meta' / 'episodes'}: episode_index {r['episode_index']} where {i} was expected "
                               "(missing or duplicate episode rows)")
        if not isinstance(r["length"], int) or r["length"] < 1:
            raise DatasetError(f"{root / 'meta' / 'episodes'}: episode {i} has length {r['length']!r}")
    if isinstance(info.total_episodes, int) and info.total_episodes != len(rows):
        raise DatasetError(f"{info.path}: total_episodes is {info.total_episodes} but meta/episodes lists {len(rows)}")
    return rows


class _DataFiles:
    """The frame tables, one open at a time (episodes are read in order, so each file is read once)."""

    def __init__(self, root: Path, info: _Info, columns: list[str]):
        self.root, self.info, self.columns = root, info, columns
        self.path, self.table, self.ep_col = None, None, None

    def rows(self, ep: dict) -> tuple[object, np.ndarray, Path]:
        path = self.root / self.info.data_path.format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
        if path != self.path:
            self.table = _read_table(path, self.columns)
            self.ep_col = self.table["episode_index"].to_numpy(zero_copy_only=False)
            self.path = path
        rows = np.flatnonzero(self.ep_col == ep["episode_index"])
        return self.table, rows, path


def _video_frames(video: VideoFile, times: np.ndarray, size, fps: float, what: str):
    """The frames presented at `times` (seconds into the file), each within 0.4 frame, streamed."""
    tol = 0.4 / fps
    i = 0
    video.seek(times[0])
    for t, img in video.frames(size):
        if i == len(times):
            return
        if t < times[i] - tol:
            continue  # before this episode (the seek lands on a keyframe)
        if t > times[i] + tol:
            raise DatasetError(f"{video.path}: no frame at {times[i]:.3f} s for {what} frame {i} (next is at {t:.3f} s): "
                               "frame count and timestamps disagree")
        i += 1
        yield img
    if i < len(times):
        raise DatasetError(f"{video.path}: ends after {i} of {len(times)} frames of {what} (truncated video, or "
                           "timestamps past its end)")


def import_lerobot(root: str | Path, out: str | Path, *, camera: str | None = None, state: list[str] | None = None,
                   actions: bool = True, size: tuple[int, int] | None = (64, 64), semantics: str | None = None,
                   show_progress: bool = True) -> dict:
    """A local LeRobotDataset v3 directory -> clamkit dataset at `out`. camera: a video/image feature
    (default: the first; "none": no image); state: vector features concatenated into "state" (default
    observation.state when present; [] for none)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    info = _Info(root)
    feats = info.features
    cams = [k for k, f in feats.items() if f.get("dtype") in ("video", "image")]
    if camera is None:
        camera = cams[0] if cams else None
    elif camera == "none":
        camera = None
    elif camera not in cams:
        raise UserError(f"{info.path}: no camera feature {camera!r}; cameras: {cams or 'none'}")
    if state is None:
        state = ["observation.state"] if "observation.state" in feats else []
    for k in state:
        if k not in feats:
            raise UserError(f"{info.path}: no feature {k!r} for --state; features: {sorted(feats)}")
    widths = {k: info.width(k) for k in state}
    has_action = actions and "action" in feats
    if has_action:
        widths["action"] = info.width("action")
    if camera is None and not state:
        raise UserError(f"{root}: nothing to import: no camera and no --state feature")

    is_video = camera is not None and feats[camera]["dtype"] == "video"
    need = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    if is_video:
        need += [f"videos/{camera}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    episodes = _episodes(root, info, need + (["tasks"] if "tasks" in _read_table_names(root) else []))
    columns = ["episode_index", "frame_index", "timestamp"] + state + (["action"] if has_action else []) + \
        ([camera] if camera is not None and not is_video else [])
    data = _DataFiles(root, info, columns)

    keys = {}
    if camera is not None:
        h, w = size or tuple(feats[camera]["shape"][:2])
        keys["image"] = ArraySpec((h, w, 3), "uint8")
    if state:
        keys["state"] = ArraySpec((sum(widths[k] for k in state),), "float32")
    action_spec = None
    if has_action:
        A = widths["action"]
        action_spec = ActionSpec(A, (-math.inf,) * A, (math.inf,) * A, semantics or f"lerobot:{info.robot}")
    src_info = {"importer": "lerobot", "source": str(root.resolve()), "camera": camera, "state": state,
                "action": "action" if has_action else None, "codebase_version": read_json(info.path).get("codebase_version"),
                "names": {k: feats[k].get("names") for k in state + (["action"] if has_action else [])}}
    frames_total = 0
    with atomic_output(out) as tmp:
        writer = DatasetWriter(tmp, observation=ObservationSpec(keys), action=action_spec, fps=info.fps, robot=info.robot,
                               info=src_info)
        video, bar = None, progress(sum(e["length"] for e in episodes), root.name, show_progress)
        try:
            for ep in episodes:
                e, T = ep["episode_index"], ep["length"]
                table, rows, path = data.rows(ep)
                what = f"episode {e}"
                if len(rows) != T:
                    raise DatasetError(f"{path}: {len(rows)} rows for {what}, meta/episodes says length {T}")
                if T < 2:
                    raise DatasetError(f"{path}: {what} has {T} frame; clamkit episodes need at least 2")
                fidx = table["frame_index"].take(rows).to_numpy(zero_copy_only=False)
                ts = table["timestamp"].take(rows).to_numpy(zero_copy_only=False).astype(np.float64)
                if not (fidx == np.arange(T)).all():
                    raise DatasetError(f"{path}: {what} frame_index is not 0..{T - 1} in order")
                if not np.isfinite(ts).all() or np.abs(ts - fidx / info.fps).max() > TIME_TOLERANCE:
                    bad = int(np.argmax(~np.isfinite(ts) | (np.abs(ts - fidx / info.fps) > TIME_TOLERANCE)))
                    raise DatasetError(f"{path}: {what} timestamp {float(ts[bad]):.4f} s at frame {bad} is not frame_index / fps "
                                       f"({bad / info.fps:.4f} s at {info.fps:g} fps): variable fps or dropped frames")
                with writer.begin_episode() as out_ep:
                    if state:
                        s = np.concatenate([_matrix(table[k], rows, widths[k], f"{path}: {k!r} of {what}") for k in state], axis=1)
                        if not np.isfinite(s).all():
                            raise DatasetError(f"{path}: {what} state contains NaN or Inf")
                    if camera is None:
                        out_ep.add_observations({"state": s})
                    else:
                        if is_video:
                            vpath = root / info.video_path.format(video_key=camera, chunk_index=ep[f"videos/{camera}/chunk_index"],
                                                                  file_index=ep[f"videos/{camera}/file_index"])
                            if video is None or video.path != vpath:
                                if video is not None:
                                    video.close()
                                video = VideoFile(vpath)
                                if video.fps and abs(video.fps - info.fps) > 1e-3 * info.fps:
                                    raise DatasetError(f"{vpath}: {video.fps:g} fps, info.json says {info.fps:g}")
                            start = float(ep[f"videos/{camera}/from_timestamp"])
                            frames = _video_frames(video, start + ts, size, info.fps, what)
                        else:
                            blobs = table[camera].take(rows).combine_chunks().field("bytes").to_pylist()
                            frames = (decode_image(b or b"", size, f"{path}: {camera!r} of {what} frame {i}") for i, b in enumerate(blobs))
                        done = 0
                        for chunk in chunked(frames):
                            obs = {"image": chunk}
                            if state:
                                obs["state"] = s[done:done + len(chunk)]
                            out_ep.add_observations(obs)
                            done += len(chunk)
                            bar.update(len(chunk))
                    if has_action:
                        a = _matrix(table["action"], rows, widths["action"], f"{path}: 'action' of {what}")
                        if not np.isfinite(a).all():
                            raise DatasetError(f"{path}: {what} action contains NaN or Inf")
                        out_ep.add_actions(a[:-1])
                    tasks = ep.get("tasks") or []
                    out_ep.commit(source_episode=e, task=tasks[0] if tasks else "")
                frames_total += T
        finally:
            bar.close()
            if video is not None:
                video.close()
    return {"out": str(out), "episodes": len(episodes), "frames": frames_total, "fps": info.fps,
            "labelled": has_action, "camera": camera, "state": state}


def _read_table_names(root: Path) -> list[str]:
    """Columns of the first episode table (to know whether it has the optional 'tasks')."""
    _, pq = _pq()
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    try:
        return pq.read_schema(files[0]).names if files else []
    except Exception:  # noqa: BLE001 - reported properly by _episodes
        return []


# ----------------------------------------------------------------------------- export


class _Rolling:
    """chunk/file indices that move on when a file passes its size limit (LeRobot's update_chunk_file_indices)."""

    def __init__(self, limit_mb: int):
        self.chunk, self.file, self.limit = 0, 0, limit_mb * 1024 * 1024

    def advance(self) -> None:
        self.file += 1
        if self.file == CHUNKS_SIZE:
            self.chunk, self.file = self.chunk + 1, 0


class _VideoOut:
    """One camera's mp4 files: episodes appended in time, a new file past the size limit."""

    def __init__(self, root: Path, key: str, fps: float, shape, codec: str, crf: int):
        self.root, self.key, self.fps, self.shape, self.codec, self.crf = root, key, fps, shape, codec, crf
        self.pos, self.container, self.frames_in_file = _Rolling(VIDEO_MB), None, 0

    def _open(self):
        lib = av()
        from fractions import Fraction

        path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.pos.chunk, file_index=self.pos.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = lib.open(str(path), "w")
        opts = {"crf": str(self.crf), "g": "2"} if self.codec in ("libx264", "libsvtav1", "h264") else {"g": "2"}
        try:
            self.stream = self.container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1000), options=opts)
        except (lib.error.FFmpegError, ValueError) as e:
            raise UserError(f"--codec {self.codec}: this PyAV cannot encode with it ({e})") from None
        self.stream.height, self.stream.width = self.shape[:2]
        self.stream.pix_fmt = "yuv420p"
        self.frames_in_file = 0

    def start_episode(self) -> dict:
        if self.container is not None and self.path.stat().st_size >= self.pos.limit:
            self.close()
            self.pos.advance()
        if self.container is None:
            self._open()
        return {f"videos/{self.key}/chunk_index": self.pos.chunk, f"videos/{self.key}/file_index": self.pos.file,
                f"videos/{self.key}/from_timestamp": self.frames_in_file / self.fps}

    def add(self, frames: np.ndarray) -> None:
        lib = av()
        for img in frames:
            f = lib.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts = self.frames_in_file  # in 1/fps units: the stream's rate
            for p in self.stream.encode(f):
                self.container.mux(p)
            self.frames_in_file += 1

    def end_episode(self) -> dict:
        return {f"videos/{self.key}/to_timestamp": self.frames_in_file / self.fps}

    def close(self) -> None:
        if self.container is not None:
            for p in self.stream.encode():
                self.container.mux(p)
            self.container.close()
            self.container = None


def _stats_entry(st: dict, image: bool) -> dict:
    """clamkit stats -> LeRobot's {min, max, mean, std, count}; images per channel in [0, 1], shape (3, 1, 1)."""
    if not st.get("count"):
        return {}
    out = {k: np.asarray(st[k], np.float64) for k in ("min", "max", "mean", "std")}
    if image:
        out = {k: (v / 255.0).reshape(-1, 1, 1) for k, v in out.items()}
    return {**{k: v.tolist() for k, v in out.items()}, "count": [int(st["count"])]}


def export_lerobot(dataset: str | Path, out: str | Path, *, episodes: str = "all", codec: str = "libx264", crf: int = 18,
                   show_progress: bool = True) -> dict:
    """A clamkit dataset -> a LeRobotDataset v3 directory at `out` (opens in LeRobot's tools)."""
    pa, pq = _pq()
    ds = Dataset(dataset)
    chosen = [i for i in range(len(ds)) if episodes == "all" or ds.is_labelled(i) == (episodes == "labelled")]
    if not chosen:
        raise UserError(f"{ds.root}: no {episodes} episodes to export")
    labelled = {ds.is_labelled(i) for i in chosen}
    if len(labelled) > 1:
        raise UserError(f"{ds.root}: mixes labelled and unlabelled episodes; a LeRobot dataset has one schema: "
                        "pass --episodes labelled or --episodes unlabelled")
    with_action = labelled == {True}
    fps = ds.fps
    if abs(fps - round(fps)) > 1e-9:
        raise UserError(f"{ds.root}: fps {fps:g} is not a whole number; LeRobot's info.json stores an integer fps")
    fps_i = int(round(fps))

    features, cams, vectors = {}, {}, {}
    for k, spec in ds.observation.keys.items():
        if len(spec.shape) == 3 and spec.shape[2] == 3 and spec.dtype == "uint8":
            if spec.shape[0] % 2 or spec.shape[1] % 2:
                raise UserError(f"{ds.root}: '{k}' frames are {spec.shape[0]}x{spec.shape[1]}; yuv420p video needs even sizes")
            name = f"observation.images.{k}"
            cams[k] = name
            features[name] = {"dtype": "video", "shape": list(spec.shape), "names": ["height", "width", "channels"],
                              "info": {"video.height": spec.shape[0], "video.width": spec.shape[1], "video.codec": codec,
                                       "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps_i,
                                       "video.channels": 3, "has_audio": False}}
        elif len(spec.shape) == 1:
            name = "observation.state" if k == "state" else f"observation.{k}"
            vectors[k] = name
            features[name] = {"dtype": spec.dtype, "shape": list(spec.shape), "names": None}
        else:
            raise UserError(f"{ds.root}: observation '{k}' {list(spec.shape)} {spec.dtype} has no LeRobot feature type "
                            "(vectors and uint8 RGB frames export)")
    if with_action:
        features["action"] = {"dtype": "float32", "shape": [ds.action.dim], "names": None}
    for k, dt in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                  ("task_index", "int64")):
        features[k] = {"dtype": dt, "shape": [1], "names": None}

    fields = [pa.field(vectors[k], pa.list_(pa.from_numpy_dtype(np.dtype(ds.observation.keys[k].dtype)))) for k in vectors]
    if with_action:
        fields.append(pa.field("action", pa.list_(pa.float32())))
    fields += [pa.field("timestamp", pa.float32())] + [pa.field(k, pa.int64()) for k in ("frame_index", "episode_index", "index", "task_index")]
    schema = pa.schema(fields)

    tasks: dict[str, int] = {}
    rows_meta, total = [], 0
    with atomic_output(out) as tmp:
        videos = {k: _VideoOut(tmp, cams[k], fps, ds.observation.keys[k].shape, codec, crf) for k in cams}
        data_pos, data_writer, data_path = _Rolling(DATA_MB), None, None
        bar = progress(sum(ds.episodes[i]["length"] for i in chosen), ds.root.name, show_progress)
        try:
            for new_i, i in enumerate(chosen):
                ds.verify_episode(i)
                arrays, T = ds.episode(i), ds.episodes[i]["length"]
                task = str(ds.episodes[i].get("task") or ds.meta.get("task") or "")
                t_idx = tasks.setdefault(task, len(tasks))
                if data_writer is not None and data_path.stat().st_size >= data_pos.limit:
                    data_writer.close()
                    data_writer = None
                    data_pos.advance()
                if data_writer is None:
                    data_path = tmp / DATA_PATH.format(chunk_index=data_pos.chunk, file_index=data_pos.file)
                    data_path.parent.mkdir(parents=True, exist_ok=True)
                    data_writer = pq.ParquetWriter(data_path, schema)
                cols = {vectors[k]: pa.array(list(np.asarray(arrays[k])), type=schema.field(vectors[k]).type) for k in vectors}
                if with_action:
                    a = np.asarray(arrays["action"], np.float32)
                    cols["action"] = pa.array(list(np.concatenate([a, a[-1:]])), type=pa.list_(pa.float32()))  # hold the last
                cols["timestamp"] = pa.array((np.arange(T) / fps).astype(np.float32))
                cols["frame_index"] = pa.array(np.arange(T, dtype=np.int64))
                cols["episode_index"] = pa.array(np.full(T, new_i, np.int64))
                cols["index"] = pa.array(np.arange(total, total + T, dtype=np.int64))
                cols["task_index"] = pa.array(np.full(T, t_idx, np.int64))
                data_writer.write_table(pa.table(cols, schema=schema))
                meta = {"episode_index": new_i, "tasks": [task], "length": T, "data/chunk_index": data_pos.chunk,
                        "data/file_index": data_pos.file, "dataset_from_index": total, "dataset_to_index": total + T}
                for k, v in videos.items():
                    meta.update(v.start_episode())
                    for c in range(0, T, 64):
                        v.add(np.asarray(arrays[k][c:c + 64]))
                    meta.update(v.end_episode())
                meta.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
                rows_meta.append(meta)
                total += T
                bar.update(T)
        finally:
            bar.close()
            if data_writer is not None:
                data_writer.close()
            for v in videos.values():
                v.close()

        ep_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows_meta), ep_path)
        pandas_meta = {"index_columns": ["task"], "column_indexes": [], "creator": {"library": "pyarrow", "version": pa.__version__},
                       "pandas_version": "2.2.0",
                       "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
                                   {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None}]}
        task_table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks), pa.string())})
        pq.write_table(task_table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), tmp / TASKS_PATH)
        stats = {}
        for k, name in {**vectors, **cams}.items():
            if k in ds.stats:
                stats[name] = _stats_entry(ds.stats[k], k in cams)
        if with_action and "action" in ds.stats:
            stats["action"] = _stats_entry(ds.stats["action"], False)
        write_json_atomic(tmp / "meta" / "stats.json", stats)
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": ds.meta.get("robot") or None, "total_episodes": len(chosen),
                "total_frames": total, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_MB,
                "video_files_size_in_mb": VIDEO_MB, "fps": fps_i, "splits": {"train": f"0:{len(chosen)}"},
                "data_path": DATA_PATH, "video_path": VIDEO_PATH if cams else None, "features": features}
        write_json_atomic(tmp / "meta" / "info.json", info)
    return {"out": str(out), "episodes": len(chosen), "frames": total, "fps": fps_i, "cameras": list(cams.values()),
            "labelled": with_action}
