"""RLDS / Open X-Embodiment TFRecord episodes -> clamkit dataset, without TensorFlow.

A TFDS-prepared RLDS dataset (e.g. BridgeData V2, `bridge_dataset/1.0.0/`) is

    dataset_info.json, features.json        TFDS metadata (features.json gives per-step shapes)
    <name>-train.tfrecord-00000-of-01024    TFRecord shards: one serialized episode per record

Each record is a tf.train.Example whose per-step features are flattened over the episode:
`steps/observation/image_0` (bytes, one JPEG/PNG per step), `steps/observation/state` (float, T x 7),
`steps/action` (float, T x 7), `steps/is_first` / `steps/is_last` (int64 0/1),
`steps/language_instruction` (bytes), plus `episode_metadata/...`. A tf.train.SequenceExample with the
same keys in its feature_lists (one entry per step) is read too. The TFRecord framing (length, masked
crc32c, data, masked crc32c) is checked here; the protos come from the `tfrecord` package.

RLDS step t holds o_t and the a_t taken there, as clamkit does: T steps -> T observations, T-1 actions.

Action semantics, --action-map bridge (the default for a dataset named *bridge*): BridgeData V2's
7-D action is [dx, dy, dz (m), droll, dpitch, dyaw (rad)] of the end effector per 5 Hz step plus the
absolute gripper command (1 open, 0 closed): the same layout, units and rate as clamkit's WidowX
`ee_delta_xyz_rpy+gripper`, so entries 0-5 are kept as they are and the gripper is clipped to [0, 1].
Assumed, not verified against the robots: Bridge's rotation deltas are taken in the same roll/pitch/yaw
convention as robot/kinematics.py. meta.json's info.action_mapping says all of this. --action-map raw
keeps the actions unmapped (semantics "rlds:<name>", unbounded).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from clamkit.dataset import DatasetWriter
from clamkit.fileio import read_json
from clamkit.errors import DatasetError, UserError, require
from clamkit.importers.common import atomic_output, chunked, decode_image, progress
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

MAX_RECORD = 1 << 31  # bytes; a longer "record" is a corrupt length field
BRIDGE_FPS = 5.0
WIDOWX_SEMANTICS = "ee_delta_xyz_rpy+gripper"
BRIDGE_MAPPING = {
    "source": "BridgeData V2 steps/action: [dx, dy, dz] m, [droll, dpitch, dyaw] rad per 5 Hz step, gripper 1=open 0=closed",
    "clamkit": "ee_delta_xyz_rpy+gripper: deltas of the measured EE pose per tick, absolute gripper 0=closed 1=open",
    "transform": "entries 0-5 unchanged; gripper clipped to [0, 1]",
    "assumption": "Bridge rotation deltas use the same roll/pitch/yaw convention as clamkit's kinematics (not verified)",
}


def _masked_crc(data: bytes) -> int:
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: Path):
    """Yield (index, bytes) of each TFRecord record, checking both crc32c's; DatasetError on damage."""
    require("crc32c", "import")
    with open(path, "rb") as f:
        i = 0
        while True:
            offset = f.tell()
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise DatasetError(f"{path}: truncated record header at byte {offset} (record {i})")
            (length,), (crc,) = struct.unpack("<Q", head[:8]), struct.unpack("<I", head[8:])
            if _masked_crc(head[:8]) != crc:
                raise DatasetError(f"{path}: corrupt record length at byte {offset} (record {i}; crc32c mismatch)")
            if length > MAX_RECORD:
                raise DatasetError(f"{path}: record {i} claims {length} bytes")
            data = f.read(length)
            tail = f.read(4)
            if len(data) < length or len(tail) < 4:
                raise DatasetError(f"{path}: truncated in record {i} (byte {offset}: {length} bytes announced, "
                                   f"{len(data)} present)")
            if _masked_crc(data) != struct.unpack("<I", tail)[0]:
                raise DatasetError(f"{path}: record {i} is corrupt (data crc32c mismatch at byte {offset})")
            yield i, data
            i += 1


def _feature_values(feat) -> list:
    kind = feat.WhichOneof("kind")
    if kind is None:
        return []
    return list(getattr(feat, kind).value)


class Episode:
    """One serialized RLDS episode: Example (flattened steps) or SequenceExample (feature_lists)."""

    def __init__(self, data: bytes, what: str):
        require("tfrecord", "import")
        from google.protobuf.message import DecodeError
        from tfrecord import example_pb2

        seq = example_pb2.SequenceExample()
        try:
            seq.ParseFromString(data)  # an Example is a SequenceExample with only a context (same field 1)
        except DecodeError as e:
            raise DatasetError(f"{what}: not a tf.train.Example ({e})") from None
        self.what = what
        self.context = seq.context.feature
        self.lists = seq.feature_lists.feature_list

    def has(self, key: str) -> bool:
        return key in self.context or key in self.lists

    def keys(self) -> list[str]:
        return sorted(set(self.context) | set(self.lists))

    def values(self, key: str) -> list:
        """All values of a per-step feature, steps concatenated."""
        if key in self.lists:
            return [v for f in self.lists[key].feature for v in _feature_values(f)]
        if key in self.context:
            return _feature_values(self.context[key])
        raise DatasetError(f"{self.what}: no feature {key!r}; features: {self.keys()[:20]}")

    def steps(self, key: str, T: int, width: int | None, what: str) -> np.ndarray:
        """(T, width) float array of a per-step vector feature."""
        v = np.asarray(self.values(key), np.float64)
        if width is None:
            if T == 0 or len(v) % T:
                raise DatasetError(f"{self.what}: {key} has {len(v)} values for {T} steps")
            width = len(v) // T
        if len(v) != T * width:
            raise DatasetError(f"{self.what}: {key} has {len(v)} values, expected {T} steps x {width} ({what})")
        return v.reshape(T, width)


def feature_shapes(features_json: dict) -> dict[str, list[int]]:
    """features.json (TFDS FeaturesDict) -> {"steps/action": [7], "steps/observation/image_0": [256, 256, 3], ...}."""
    out = {}

    def walk(node, prefix):
        if not isinstance(node, dict):
            return
        if "featuresDict" in node:
            for k, v in node["featuresDict"].get("features", {}).items():
                walk(v, f"{prefix}{k}/")
        if "sequence" in node:
            walk(node["sequence"].get("feature"), prefix)
        for kind in ("tensor", "image"):
            if kind in node:
                dims = node[kind].get("shape", {}).get("dimensions", [])
                out[prefix.rstrip("/")] = [int(d) for d in dims]

    walk(features_json, "")
    return out


def _shards(src: Path, split: str) -> tuple[list[Path], Path]:
    if src.is_file():
        return [src], src.parent
    if not src.is_dir():
        raise UserError(f"{src}: no such file or directory")
    files = sorted(p for p in src.glob("*.tfrecord*") if p.is_file() and f"-{split}." in p.name)
    if not files:
        raise DatasetError(f"{src}: no *-{split}.tfrecord* shards")
    return files, src


def import_rlds(src: str | Path, out: str | Path, *, image_key: str | None = None, state_key: str | None = "auto",
                action_key: str = "steps/action", action_map: str = "auto", fps: float | None = None, split: str = "train",
                size: tuple[int, int] | None = (64, 64), show_progress: bool = True) -> dict:
    """RLDS TFRecord shards (a TFDS dataset directory or one file) -> clamkit dataset at `out`."""
    src = Path(src)
    shards, folder = _shards(src, split)
    meta_info = read_json(folder / "dataset_info.json") if (folder / "dataset_info.json").is_file() else {}
    name = (meta_info.get("name") if isinstance(meta_info, dict) else None) or shards[0].name.split("-")[0]
    shapes = feature_shapes(read_json(folder / "features.json")) if (folder / "features.json").is_file() else {}
    if action_map == "auto":
        action_map = "bridge" if "bridge" in name.lower() else "raw"
    if action_map not in ("bridge", "raw", "none"):
        raise UserError(f"--action-map {action_map!r}: choose bridge, raw or none")
    rate = fps if fps is not None else (BRIDGE_FPS if action_map == "bridge" else None)
    if rate is None or not rate > 0:
        raise UserError("RLDS stores no frame rate; pass --fps (BridgeData is 5)")

    first = Episode(next(iter(read_records(shards[0])), (0, None))[1] or _empty(shards[0]), f"{shards[0]}: record 0")
    if image_key is None:
        cands = [k for k in first.keys() if k.startswith("steps/observation/image")]
        image_key = cands[0] if cands else None
    elif image_key == "none":
        image_key = None
    if state_key == "auto":
        state_key = "steps/observation/state" if first.has("steps/observation/state") else None
    elif state_key == "none":
        state_key = None
    for k in (image_key, state_key):
        if k is not None and not first.has(k):
            raise UserError(f"{shards[0]}: record 0 has no feature {k!r}; features: {first.keys()}")
    if image_key is None and state_key is None:
        raise UserError(f"{shards[0]}: nothing to import: no image and no state feature")
    labelled = action_map != "none" and first.has(action_key)
    T0 = _length(first, image_key, action_key)
    A = shapes.get(action_key, [len(first.values(action_key)) // T0 if labelled else 0])[0] if labelled else 0
    D = shapes.get(state_key, [len(first.values(state_key)) // T0])[0] if state_key else 0
    if action_map == "bridge" and labelled and A != 7:
        raise DatasetError(f"{shards[0]}: {action_key} is {A}-D; the bridge mapping needs BridgeData's 7-D actions (use --action-map raw)")

    keys = {}
    if image_key:
        hw = size or tuple(shapes.get(image_key, [0, 0])[:2])
        if not all(hw):
            img0 = decode_image(first.values(image_key)[0], None, f"{shards[0]}: record 0 {image_key}")
            hw = img0.shape[:2]
        keys["image"] = ArraySpec((*hw, 3), "uint8")
    if state_key:
        keys["state"] = ArraySpec((D,), "float32")
    spec = None
    if labelled:
        if action_map == "bridge":
            spec = ActionSpec(7, (-math.inf,) * 6 + (0.0,), (math.inf,) * 6 + (1.0,), WIDOWX_SEMANTICS)
        else:
            spec = ActionSpec(A, (-math.inf,) * A, (math.inf,) * A, f"rlds:{name}")
    info = {"importer": "rlds", "source": str(src.resolve()), "dataset": name, "split": split, "image": image_key,
            "state": state_key, "action": action_key if labelled else None,
            "action_mapping": (BRIDGE_MAPPING if action_map == "bridge" else {"transform": "none (raw)"}) if labelled else None}
    episodes = frames_total = 0
    with atomic_output(out) as tmp:
        writer = DatasetWriter(tmp, observation=ObservationSpec(keys), action=spec, fps=rate,
                               robot="widowx" if action_map == "bridge" else f"rlds:{name}", info=info)
        with progress(None, name, show_progress, unit="episode") as bar:
            for shard in shards:
                for i, data in read_records(shard):
                    ep = Episode(data, f"{shard}: record {i}")
                    frames_total += _write(writer, ep, image_key, state_key, action_key if labelled else None, D, A,
                                           action_map, size, f"{shard.name} record {i}")
                    episodes += 1
                    bar.update(1)
        if not episodes:
            raise DatasetError(f"{src}: no episodes")
    return {"out": str(out), "episodes": episodes, "frames": frames_total, "fps": rate, "labelled": labelled,
            "action_map": action_map if labelled else None, "image": image_key, "state": state_key}


def _empty(path: Path):
    raise DatasetError(f"{path}: holds no records")


def _length(ep: Episode, image_key: str | None, action_key: str) -> int:
    for k in ("steps/is_first", "steps/is_last", image_key):
        if k and ep.has(k):
            return len(ep.values(k))
    raise DatasetError(f"{ep.what}: cannot tell the step count (no steps/is_first, steps/is_last or image feature)")


def _write(writer, ep: Episode, image_key, state_key, action_key, D: int, A: int, action_map: str, size, source: str) -> int:
    T = _length(ep, image_key, action_key or "")
    if T < 2:
        raise DatasetError(f"{ep.what}: {T} step(s); an episode needs at least 2")
    for flag, want in (("steps/is_first", 0), ("steps/is_last", T - 1)):
        if ep.has(flag):
            v = np.asarray(ep.values(flag))
            expect = np.zeros(T, v.dtype)
            expect[want] = 1
            if v.shape != (T,) or not (v == expect).all():
                raise DatasetError(f"{ep.what}: {flag} is {v.astype(int).tolist()[:12]}{'...' if len(v) > 12 else ''}; "
                                   f"expected 1 only at step {want} of {T} (episode boundaries inconsistent)")
    state = ep.steps(state_key, T, D, "state") if state_key else None
    if state is not None and not np.isfinite(state).all():
        raise DatasetError(f"{ep.what}: {state_key} contains NaN or Inf")
    task = ""
    if ep.has("steps/language_instruction"):
        lang = ep.values("steps/language_instruction")
        task = lang[0].decode("utf-8", "replace") if lang else ""
    with writer.begin_episode() as out:
        if image_key:
            blobs = ep.values(image_key)
            if len(blobs) != T:
                raise DatasetError(f"{ep.what}: {image_key} has {len(blobs)} images for {T} steps")
            frames = (decode_image(b, size, f"{ep.what}: {image_key} step {t}") for t, b in enumerate(blobs))
            done = 0
            for chunk in chunked(frames):
                if size is None and chunk.shape[1:3] != writer.observation.keys["image"].shape[:2]:
                    raise DatasetError(f"{ep.what}: {image_key} frames are {chunk.shape[1]}x{chunk.shape[2]}, the first "
                                       "episode's are different; pass --size")
                obs = {"image": chunk}
                if state is not None:
                    obs["state"] = state[done:done + len(chunk)]
                out.add_observations(obs)
                done += len(chunk)
        else:
            out.add_observations({"state": state})
        if action_key:
            a = ep.steps(action_key, T, A, "action")
            if not np.isfinite(a).all():
                raise DatasetError(f"{ep.what}: {action_key} contains NaN or Inf")
            if action_map == "bridge":
                a[:, 6] = np.clip(a[:, 6], 0.0, 1.0)
            out.add_actions(a[:-1])
        out.commit(source=source, task=task)
    return T

