"""The clamkit dataset: a directory readable with numpy alone.

    DIR/meta.json                  format, version, fps, robot, task, observation keys, action spec,
                                   per-key statistics, and the episode table
    DIR/episodes/000007/<key>.npy  one array per observation key, (T, *shape)
    DIR/episodes/000007/action.npy (T-1, action_dim), only in labelled episodes

Time convention (DESIGN §3): a_t is executed at o_t and produces o_{t+1}, so an episode of T
observations has T-1 actions and action[t] sits between obs[t] and obs[t+1].

Writes are atomic: an episode is written under a temporary name and renamed into place, then
meta.json is replaced (temp file + os.replace). A recording killed mid-episode leaves a valid
dataset holding the completed episodes; reopening it for writing removes the leftovers (a temp
directory, or an episode directory renamed into place just before meta.json listed it). Reads
memory-map every array, so random window access never loads the whole dataset.

Validation is in two tiers. Opening a Dataset checks everything that costs no data reads: meta.json's
types and values, and each array's header (shape, dtype, file size). The contents are checked by
`verify_episode` (contents vs the crc32 recorded at write time, NaN/Inf in float arrays), which reads
every byte: the trainer calls it for the episodes it loads and `clam-record info` for all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from clamkit.errors import DatasetError
from clamkit.fileio import read_json, write_json_atomic
from clamkit.outcomes import summarize
from clamkit.specs import ActionSpec, ObservationSpec, json_dict, json_float, json_int, json_list, json_str

log = logging.getLogger(__name__)

FORMAT = "clamkit-dataset"
VERSION = 1
ACTION = "action"
RESERVED = ("index", "length", "labelled", "crc32")  # episode table fields the writer owns
STATS_FIELDS = ("mean", "std", "min", "max", "sum", "sumsq")


def _npy_failure(path: Path, err: Exception) -> str:
    """Why np.load refused a file, in words (numpy's own message can be empty, or talk of pickles when the
    header is merely cut short)."""
    with open(path, "rb") as fh:
        head = fh.read(10)
    if head[:6] != b"\x93NUMPY" or len(head) < 10:
        return f"not a .npy file: its header is missing or cut short ({len(head)} bytes at the start)"
    msg = str(err).strip().splitlines()
    return f"{type(err).__name__}: {msg[0]}" if msg else f"{type(err).__name__} with no message"


def array_crc32(a: np.ndarray) -> int:
    """crc32 of an array's bytes in C order (what meta.json records per episode file)."""
    return zlib.crc32(np.ascontiguousarray(a).data) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- statistics


@dataclass
class RunningStats:
    """Per-dimension count/sum/sumsq/min/max, mergeable; for images per channel."""

    count: int = 0
    sum: np.ndarray | None = None
    sumsq: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])  # (N, C)
        if self.sum is None:
            c = x.shape[1]
            self.sum, self.sumsq = np.zeros(c), np.zeros(c)
            self.min, self.max = np.full(c, np.inf), np.full(c, -np.inf)
        self.count += x.shape[0]
        self.sum += x.sum(0)
        self.sumsq += (x * x).sum(0)
        self.min = np.minimum(self.min, x.min(0))
        self.max = np.maximum(self.max, x.max(0))

    def to_json(self) -> dict:
        if not self.count:
            return {"count": 0}
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.sumsq / self.count - mean**2, 0.0))
        return {"count": self.count, "mean": mean.tolist(), "std": std.tolist(), "min": self.min.tolist(), "max": self.max.tolist(),
                "sum": self.sum.tolist(), "sumsq": self.sumsq.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "RunningStats":
        if not d.get("count"):
            return cls()
        return cls(int(d["count"]), np.array(d["sum"]), np.array(d["sumsq"]), np.array(d["min"]), np.array(d["max"]))

    def merged(self, other: "RunningStats") -> "RunningStats":
        """The stats of both (count-weighted); either may be empty."""
        if not other.count:
            return self
        if not self.count:
            return other
        return RunningStats(self.count + other.count, self.sum + other.sum, self.sumsq + other.sumsq,
                            np.minimum(self.min, other.min), np.maximum(self.max, other.max))


def merge_stats(stats: Iterable[dict]) -> dict:
    """Merge the per-key stats of several datasets (count-weighted)."""
    total = RunningStats()
    for d in stats:
        total = total.merged(RunningStats.from_json(d))
    return total.to_json()


# ----------------------------------------------------------------------------- streamed episode files


class NpyStream:
    """One .npy file written a chunk of steps at a time (a 10-minute video never sits in memory).

    The header is reserved at open with room for any step count and rewritten with the real one at
    close; the crc32 of the contents is chained over the chunks, so it equals `array_crc32` of the
    whole array. Float chunks must be finite.
    """

    def __init__(self, path: Path, step_shape: tuple[int, ...], dtype: str, what: str):
        self.path, self.what = Path(path), what
        self.step_shape, self.dtype = tuple(step_shape), np.dtype(dtype)
        self.count, self.crc = 0, 0
        self.stats = RunningStats()
        self._size = len(self._header(10**15))  # the longest header this file will ever need
        self._f = open(self.path, "wb")
        self._f.write(self._header(0, self._size))

    def _header(self, n: int, size: int | None = None) -> bytes:
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (n, *self.step_shape)}
        body = repr(d).encode("latin1")
        size = size or -(-(len(body) + 11) // 64) * 64  # magic(6) + version(2) + length(2) + body + "\n", 64-aligned
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", size - 10) + body.ljust(size - 11) + b"\n"

    def append(self, chunk: np.ndarray) -> None:
        a = np.ascontiguousarray(chunk, dtype=self.dtype)
        if a.shape[1:] != self.step_shape:
            raise DatasetError(f"episode {self.what!r} has per-step shape {a.shape[1:]}, dataset expects {self.step_shape}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DatasetError(f"episode {self.what!r} contains NaN or Inf")
        if not len(a):
            return
        self._f.write(a.data)
        self.crc = zlib.crc32(a.data, self.crc)
        self.count += len(a)
        self.stats.update(a if a.ndim > 1 else a[:, None])

    def close(self) -> None:
        """Write the real step count into the header and fsync."""
        if self._f.closed:
            return
        self._f.seek(0)
        self._f.write(self._header(self.count, self._size))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def discard(self) -> None:
        self._f.close()


class EpisodeStream:
    """An episode written step chunk by step chunk: `DatasetWriter.begin_episode()` hands one out.

        with writer.begin_episode() as ep:
            for frames in chunks:                      # (n, *shape) per observation key
                ep.add_observations({"image": frames})
            ep.add_actions(actions)                    # (T-1, A) in total, in any chunks; omit when unlabelled
            ep.commit(task="...")                      # atomic: renamed into place, then meta.json
    Leaving the block without commit (an error, Ctrl-C) removes the partial episode.
    """

    def __init__(self, writer: "DatasetWriter"):
        if writer._stream is not None and not writer._stream.done:
            raise DatasetError(f"{writer.root}: an episode is already being written; commit or abort it first")
        writer._stream = self
        self.writer = writer
        self.index = len(writer.meta["episodes"])
        self.tmp = writer.root / "episodes" / f".tmp-{self.index:06d}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        self.files = {k: NpyStream(self.tmp / f"{k}.npy", s.shape, s.dtype, k) for k, s in writer.observation.keys.items()}
        self.done = False

    def __enter__(self) -> "EpisodeStream":
        return self

    def __exit__(self, *exc) -> None:
        if not self.done:
            self.abort()

    def add_observations(self, obs: dict[str, np.ndarray]) -> None:
        if set(obs) != set(self.files):
            raise DatasetError(f"episode has keys {sorted(obs)}, dataset expects {sorted(self.files)}")
        for k, a in obs.items():
            self.files[k].append(a)

    def add_actions(self, actions: np.ndarray) -> None:
        if self.writer.action is None:
            raise DatasetError("dataset was created without an action spec; cannot add a labelled episode")
        if ACTION not in self.files:
            self.files[ACTION] = NpyStream(self.tmp / f"{ACTION}.npy", (self.writer.action.dim,), "float32", ACTION)
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != self.writer.action.dim:
            raise DatasetError(f"actions have shape {actions.shape}, expected (n, {self.writer.action.dim})")
        self.files[ACTION].append(actions)

    @property
    def length(self) -> int:
        """Observations written so far (the shortest key)."""
        return min(f.count for k, f in self.files.items() if k != ACTION)

    def commit(self, **episode_info) -> int:
        """Check the counts, move the episode into place, then list it in meta.json. Returns its index."""
        w = self.writer
        if set(episode_info) & set(RESERVED):
            raise DatasetError(f"episode info may not set {sorted(set(episode_info) & set(RESERVED))} (the writer owns them)")
        lengths = {k: f.count for k, f in self.files.items() if k != ACTION}
        T = next(iter(lengths.values()))
        if len(set(lengths.values())) != 1 or T < 2:
            raise DatasetError(f"episode observation lengths {lengths} must be equal and at least 2")
        labelled = ACTION in self.files
        if labelled and self.files[ACTION].count != T - 1:
            raise DatasetError(f"actions have shape ({self.files[ACTION].count}, {w.action.dim}), "
                               f"expected ({T - 1}, {w.action.dim}) for {T} observations")
        for f in self.files.values():
            f.close()
        os.replace(self.tmp, w.root / "episodes" / f"{self.index:06d}")
        self.done = True
        for k, f in self.files.items():
            w.stats[k] = w.stats.get(k, RunningStats()).merged(f.stats)
        entry = {"index": self.index, "length": T, "labelled": labelled, "crc32": {k: f.crc for k, f in self.files.items()}}
        entry.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in episode_info.items()})
        w.meta["episodes"].append(entry)
        w.meta["stats"] = {k: s.to_json() for k, s in w.stats.items()}
        write_json_atomic(w.root / "meta.json", w.meta)
        return self.index

    def abort(self) -> None:
        """Drop the partial episode (its temp directory); the dataset is as before."""
        for f in self.files.values():
            f.discard()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.done = True


# ----------------------------------------------------------------------------- writer


class DatasetWriter:
    """Append episodes to a dataset directory, atomically, one at a time.

    Opening an existing dataset appends to it (specs must match); a recording that was killed
    therefore continues where it stopped.
    """

    def __init__(self, root: str | Path, *, observation: ObservationSpec, action: ActionSpec | None,
                 fps: float, robot: str, task: str = "", info: dict | None = None):
        self.root = Path(root)
        self.observation, self.action = observation, action
        self._stream: EpisodeStream | None = None  # the episode being written, if any (one at a time)
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)
        if (self.root / "meta.json").exists():
            existing = Dataset(self.root)
            if existing.observation != observation or (action is not None and existing.action not in (None, action)):
                raise DatasetError(f"{self.root}: exists with a different observation/action spec; choose a new --out")
            self.meta = existing.meta
            self.stats = {k: RunningStats.from_json(v) for k, v in self.meta["stats"].items()}
        else:
            self.meta = {"format": FORMAT, "version": VERSION, "fps": float(fps), "robot": robot, "task": task,
                         "observation": observation.to_json(), "action": action.to_json() if action else None,
                         "info": info or {}, "stats": {}, "episodes": []}
            self.stats = {}
            write_json_atomic(self.root / "meta.json", self.meta)  # an empty dataset is a valid one
        # Leftovers of a killed write are not episodes; remove them: temp directories, and an episode
        # directory renamed into place by a writer killed before meta.json listed it.
        for tmp in (self.root / "episodes").glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for d in (self.root / "episodes").iterdir():
            if d.name.isdigit() and int(d.name) >= len(self.meta["episodes"]):
                log.warning("%s: not in meta.json (a recording was killed while adding it); removing it", d)
                shutil.rmtree(d, ignore_errors=True)

    def __len__(self) -> int:
        return len(self.meta["episodes"])

    def add_episode(self, obs: dict[str, np.ndarray], actions: np.ndarray | None = None, **episode_info) -> int:
        """Write one episode: obs[key] is (T, *shape); actions (T-1, dim) or None (unlabelled)."""
        lengths = {k: len(v) for k, v in obs.items()}
        if set(episode_info) & set(RESERVED):
            raise DatasetError(f"episode info may not set {sorted(set(episode_info) & set(RESERVED))} (the writer owns them)")
        if set(obs) != set(self.observation.keys):
            raise DatasetError(f"episode has keys {sorted(obs)}, dataset expects {sorted(self.observation.keys)}")
        T = next(iter(lengths.values()))
        if len(set(lengths.values())) != 1 or T < 2:
            raise DatasetError(f"episode observation lengths {lengths} must be equal and at least 2")
        if actions is not None:
            if self.action is None:
                raise DatasetError("dataset was created without an action spec; cannot add a labelled episode")
            actions = np.asarray(actions, dtype=np.float32)
            if actions.shape != (T - 1, self.action.dim):
                raise DatasetError(f"actions have shape {actions.shape}, expected ({T - 1}, {self.action.dim}) for {T} observations")
        with self.begin_episode() as ep:
            ep.add_observations(obs)
            if actions is not None:
                ep.add_actions(actions)
            return ep.commit(**episode_info)

    def begin_episode(self) -> EpisodeStream:
        """An episode to write in chunks of steps (bounded memory); see EpisodeStream."""
        return EpisodeStream(self)


# ----------------------------------------------------------------------------- reader


class Dataset:
    """A validated, memory-mapped view of a dataset directory.

    >>> ds = Dataset("data/reach-expert")
    >>> ds.episode(0)["state"].shape       # (T, 39), a np.memmap
    >>> idx = ds.window_index()            # (N, 2) rows of (episode, t), 1 <= t <= T-2
    >>> w = ds.windows(idx[:64], "state")  # (64, 3, 39): o_{t-1}, o_t, o_{t+1}
    >>> a = ds.actions(idx[:64])           # (64, A): a_t
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset directory")
        if not meta_path.is_file():
            raise DatasetError(f"{meta_path}: not found; is {self.root} a clamkit dataset?")
        self.meta = read_json(meta_path)
        try:
            self._parse_meta()
        except DatasetError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise DatasetError(f"{meta_path}: malformed ({type(e).__name__}: {e})") from None
        self._episodes = [self._open_episode(e) for e in self.meta["episodes"]]

    def _parse_meta(self) -> None:
        """Check every field of meta.json for type and value (ValueError/DatasetError on the first problem)."""
        m, path = self.meta, self.root / "meta.json"
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a clamkit dataset (format is {m.get('format') if isinstance(m, dict) else type(m).__name__!r})")
        if type(m.get("version")) is not int or m["version"] != VERSION:
            raise DatasetError(f"{path}: dataset format version {m.get('version')!r} is not supported (this clamkit reads {VERSION})")
        self.observation = ObservationSpec.from_json(m.get("observation"))
        if not self.observation.keys:
            raise DatasetError(f"{path}: no observation keys")
        self.action = ActionSpec.from_json(m["action"]) if m.get("action") is not None else None
        self.fps = json_float(m.get("fps"), "fps", positive=True)
        json_str(m.get("robot"), "robot")
        json_str(m.setdefault("task", ""), "task")
        json_dict(m.setdefault("info", {}), "info")
        widths = {k: (s.shape[-1] if s.shape else 1) for k, s in self.observation.keys.items()}
        if self.action is not None:
            widths[ACTION] = self.action.dim
        for k, st in json_dict(m.setdefault("stats", {}), "stats").items():
            if k not in widths:
                raise ValueError(f"stats for unknown key {k!r}")
            json_dict(st, f"stats '{k}'")
            if json_int(st.get("count", 0), f"stats '{k}' count", minimum=0):
                for f in STATS_FIELDS:
                    v = json_list(st.get(f), f"stats '{k}' {f}")
                    if len(v) != widths[k]:
                        raise ValueError(f"stats '{k}' {f} has {len(v)} entries, expected {widths[k]}")
                    for x in v:
                        json_float(x, f"stats '{k}' {f}")
        for i, e in enumerate(json_list(m.get("episodes"), "episodes")):
            if not isinstance(e, dict) or type(e.get("index")) is not int or e["index"] != i \
                    or type(e.get("length")) is not int or e["length"] < 2 or type(e.get("labelled")) is not bool:
                raise DatasetError(f"{path}: episode table entry {i} is malformed (needs index {i}, length >= 2, labelled "
                                   f"true/false): {str(e)[:200]}")
            if e["labelled"] and self.action is None:
                raise DatasetError(f"{path}: episode {i} is labelled but the dataset has no action spec")
            for k, c in json_dict(e.get("crc32", {}), f"episode {i} crc32").items():
                json_int(c, f"episode {i} crc32 of {k!r}", minimum=0)

    def _open_episode(self, e: dict) -> dict[str, np.ndarray]:
        d = self.root / "episodes" / f"{e['index']:06d}"
        T = e["length"]
        want = {k: (T, *s.shape, s.dtype) for k, s in self.observation.keys.items()}
        if e["labelled"]:
            want[ACTION] = (T - 1, self.action.dim, "float32")
        arrays = {}
        for k, (*shape, dtype) in want.items():
            f = d / f"{k}.npy"
            if not f.is_file():
                raise DatasetError(f"{f}: missing")
            try:
                a = np.load(f, mmap_mode="r", allow_pickle=False)
            except Exception as err:  # noqa: BLE001 - numpy's header parser also raises tokenize.TokenError, SyntaxError, ...
                raise DatasetError(f"{f}: unreadable or truncated ({_npy_failure(f, err)})") from None
            if not isinstance(a, np.ndarray):
                raise DatasetError(f"{f}: not a .npy array file")
            if a.shape != tuple(shape):
                raise DatasetError(f"{f}: shape {a.shape}, meta.json says {tuple(shape)}")
            if a.dtype != np.dtype(dtype):
                raise DatasetError(f"{f}: dtype {a.dtype}, meta.json says {dtype}")
            arrays[k] = a
        return arrays

    def episode_file(self, i: int, key: str) -> Path:
        return self.root / "episodes" / f"{i:06d}" / f"{key}.npy"

    def verify_episode(self, i: int, keys: Iterable[str] | None = None) -> None:
        """Read episode i's arrays (all, or `keys`) in full: their bytes must match the crc32 recorded at
        write time (datasets written before checksums have none) and float arrays must be finite.
        DatasetError naming the file otherwise. Costs one pass over the data."""
        crcs = self.episodes[i].get("crc32", {})
        for k in (self._episodes[i] if keys is None else keys):
            a = self._episodes[i].get(k)
            if a is None:
                continue
            f = self.episode_file(i, k)
            try:
                if k in crcs and array_crc32(a) != crcs[k]:
                    raise DatasetError(f"{f}: contents do not match the crc32 in meta.json (corrupted or edited); "
                                       "re-record the episode or restore the file")
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    bad = np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0][0]
                    raise DatasetError(f"{f}: contains NaN or Inf (first at step {bad}); re-record the episode or restore the file")
            except OSError as e:  # the file shrank or vanished under the memory map
                raise DatasetError(f"{f}: cannot be read ({e})") from None

    # -- basic access

    def __len__(self) -> int:
        return len(self._episodes)

    @property
    def episodes(self) -> list[dict]:
        """The episode table from meta.json (index, length, labelled, success, ...)."""
        return self.meta["episodes"]

    @property
    def stats(self) -> dict:
        return self.meta["stats"]

    @property
    def num_steps(self) -> int:
        return sum(e["length"] for e in self.episodes)

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Memory-mapped arrays of episode i: observation keys, plus "action" when labelled."""
        return self._episodes[i]

    def is_labelled(self, i: int) -> bool:
        return bool(self.episodes[i]["labelled"])

    # -- windows under the one time convention

    def window_index(self, before: int = 1, after: int = 1, labelled: bool | None = None,
                     episodes: Iterable[int] | None = None) -> np.ndarray:
        """All (episode, t) with o_{t-before} .. o_{t+after} inside the episode, as an (N, 2) int64 array.

        labelled=True keeps episodes with actions (a_t exists for every such t since after >= 1).
        """
        if after < 1 or before < 0:
            raise ValueError("windows need after >= 1 and before >= 0")
        rows = []
        for i in (range(len(self)) if episodes is None else episodes):
            if labelled is not None and self.is_labelled(i) != labelled:
                continue
            T = self.episodes[i]["length"]
            t = np.arange(before, T - after)
            rows.append(np.stack([np.full_like(t, i), t], 1))
        return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)

    def windows(self, index: np.ndarray, key: str, before: int = 1, after: int = 1) -> np.ndarray:
        """Observations o_{t-before} .. o_{t+after} for each (episode, t) row: (N, before+1+after, *shape)."""
        offsets = np.arange(-before, after + 1)
        return np.stack([self._episodes[e][key][t + offsets] for e, t in index])

    def actions(self, index: np.ndarray) -> np.ndarray:
        """a_t for each (episode, t) row: the action executed at o_t, producing o_{t+1}. (N, A)."""
        out = []
        for e, t in index:
            if not self.is_labelled(e):
                raise DatasetError(f"{self.root}: episode {e} has no actions")
            out.append(self._episodes[e][ACTION][t])
        return np.stack(out).astype(np.float32)

    def concat(self, key: str, labelled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All frames of `key` in one array plus each episode's start offset (for small, state-only data)."""
        eps = [i for i in range(len(self)) if labelled is None or self.is_labelled(i) == labelled]
        arrays = [np.asarray(self._episodes[i][key]) for i in eps]
        starts = np.cumsum([0] + [len(a) for a in arrays[:-1]])
        return (np.concatenate(arrays) if arrays else np.zeros((0,))), starts

    def summary(self) -> dict:
        eps = self.episodes
        return {"episodes": len(eps), "steps": self.num_steps, "labelled": sum(e["labelled"] for e in eps)} | summarize(eps)
