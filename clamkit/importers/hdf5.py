"""robomimic-layout HDF5 -> clamkit dataset (h5py).

    data/                    attrs: env_args (JSON: env_name, env_kwargs.control_freq, ...), total
    data/demo_0/actions      (T, A) float
    data/demo_0/obs/<key>    (T, ...) e.g. agentview_image (T, 84, 84, 3) uint8, robot0_eef_pos (T, 3)
    data/demo_0/next_obs/<key>  (T, ...) o_{t+1}, optional
    mask/<filter>            optional demo-name lists (train, valid, ...)

robomimic's step t holds o_t and the a_t executed there (clamkit's convention). With next_obs the
episode gets all T actions and T+1 observations (the last next_obs closes it); without, T
observations and the first T-1 actions. Demos are read in robomimic's order (demo_N by N), one at a
time, images in chunks.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from clamkit.dataset import DatasetWriter
from clamkit.errors import DatasetError, UserError, require
from clamkit.importers.common import CHUNK, atomic_output, progress
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

DEFAULT_STATE = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
ROBOSUITE_HZ = 20.0  # robosuite's default control_freq, used when env_args does not say


def _resize(frames: np.ndarray, size) -> np.ndarray:
    """(n, h, w, 3) uint8 -> (n, H, W, 3) through libswscale's area filter (the importers' one resize path)."""
    if size is None or frames.shape[1:3] == tuple(size):
        return frames
    from clamkit.importers.common import av, to_rgb

    lib = av()
    return np.stack([to_rgb(lib.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24"), size) for f in frames])


def _demo_names(f, path: Path, filter_key: str | None) -> list[str]:
    if "data" not in f:
        raise DatasetError(f"{path}: no 'data' group (not a robomimic-layout file)")
    if filter_key:
        if f"mask/{filter_key}" not in f:
            have = sorted(f["mask"].keys()) if "mask" in f else []
            raise UserError(f"{path}: no filter mask/{filter_key}; masks: {have or 'none'}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f[f"mask/{filter_key}"][()]]
    else:
        names = list(f["data"].keys())
    bad = [n for n in names if not re.fullmatch(r"demo_\d+", n)]
    if bad:
        raise DatasetError(f"{path}: data/{bad[0]} is not named demo_N")
    missing = [n for n in names if n not in f["data"]]
    if missing:
        raise DatasetError(f"{path}: mask/{filter_key} lists data/{missing[0]}, which does not exist")
    if not names:
        raise DatasetError(f"{path}: no demos under data/")
    return sorted(names, key=lambda n: int(n.split("_")[1]))


def _fps(f, path: Path, fps: float | None) -> float:
    if fps is not None:
        return float(fps)
    raw = f["data"].attrs.get("env_args")
    if raw is None:
        return ROBOSUITE_HZ
    try:
        env = json.loads(raw)
        hz = env.get("env_kwargs", {}).get("control_freq", ROBOSUITE_HZ)
    except (ValueError, TypeError, AttributeError):
        raise DatasetError(f"{path}: data.attrs['env_args'] is not JSON; pass --fps") from None
    if isinstance(hz, bool) or not isinstance(hz, (int, float)) or not math.isfinite(hz) or hz <= 0:
        raise DatasetError(f"{path}: env_args control_freq {hz!r} is not a positive number; pass --fps")
    return float(hz)


def import_hdf5(file: str | Path, out: str | Path, *, image_key: str | None = None, state_keys: list[str] | None = None,
                fps: float | None = None, filter_key: str | None = None, actions: bool = True,
                size: tuple[int, int] | None = (64, 64), semantics: str = "robomimic", show_progress: bool = True) -> dict:
    """A robomimic HDF5 file -> clamkit dataset at `out`. image_key: an obs key of (T, H, W, 3) uint8 (default: the
    first *_image key; "none": no image); state_keys: low-dim obs keys concatenated into "state" (default: robot0 eef
    pos + quat + gripper when present)."""
    h5py = require("h5py", "import")
    path = Path(file)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({' '.join(str(e).split())})") from None
    with f:
        names = _demo_names(f, path, filter_key)
        rate = _fps(f, path, fps)
        first = f[f"data/{names[0]}"]
        if "obs" not in first:
            raise DatasetError(f"{path}: data/{names[0]} has no obs group")
        obs0 = first["obs"]
        if image_key is None:
            image_key = next((k for k in obs0 if k.endswith("image") and obs0[k].ndim == 4), None)
        elif image_key == "none":
            image_key = None
        elif image_key not in obs0:
            raise UserError(f"{path}: data/{names[0]}/obs has no {image_key!r}; keys: {sorted(obs0)}")
        if state_keys is None:
            state_keys = [k for k in DEFAULT_STATE if k in obs0]
        for k in state_keys:
            if k not in obs0:
                raise UserError(f"{path}: data/{names[0]}/obs has no {k!r}; keys: {sorted(obs0)}")
            if obs0[k].ndim > 2:
                raise UserError(f"{path}: obs/{k} has shape {obs0[k].shape}; state keys must be (T,) or (T, D)")
        if image_key is None and not state_keys:
            raise UserError(f"{path}: nothing to import: no image key and no state keys")
        widths = {k: (obs0[k].shape[1] if obs0[k].ndim == 2 else 1) for k in state_keys}
        keys = {}
        if image_key is not None:
            shp = obs0[image_key].shape
            if len(shp) != 4 or shp[3] != 3 or obs0[image_key].dtype != np.uint8:
                raise DatasetError(f"{path}: obs/{image_key} is {shp} {obs0[image_key].dtype}, expected (T, H, W, 3) uint8")
            keys["image"] = ArraySpec((*(size or shp[1:3]), 3), "uint8")
        if state_keys:
            keys["state"] = ArraySpec((sum(widths.values()),), "float32")
        labelled = actions and "actions" in first
        action_spec = None
        if labelled:
            A = first["actions"].shape[1] if first["actions"].ndim == 2 else 0
            if A < 1:
                raise DatasetError(f"{path}: data/{names[0]}/actions has shape {first['actions'].shape}, expected (T, A)")
            action_spec = ActionSpec(A, (-math.inf,) * A, (math.inf,) * A, semantics)
        env_args = f["data"].attrs.get("env_args")
        info = {"importer": "hdf5", "layout": "robomimic", "source": str(path.resolve()), "image": image_key,
                "state": state_keys, "filter": filter_key, "env_args": env_args if isinstance(env_args, str) else None}
        total = 0
        with atomic_output(out) as tmp:
            writer = DatasetWriter(tmp, observation=ObservationSpec(keys), action=action_spec, fps=rate, robot="robomimic",
                                   info=info)
            with progress(len(names), path.name, show_progress, unit="demo") as bar:
                for name in names:
                    total += _demo(writer, f[f"data/{name}"], f"{path}: data/{name}", image_key, state_keys, widths,
                                   labelled, size)
                    bar.update(1)
    return {"out": str(out), "episodes": len(names), "frames": total, "fps": rate, "labelled": labelled,
            "image": image_key, "state": state_keys}


def _demo(writer, demo, what: str, image_key, state_keys, widths, labelled: bool, size) -> int:
    """One demo, streamed in chunks; returns its observation count."""
    for part in ("obs",) + (("actions",) if labelled else ()):
        if part not in demo:
            raise DatasetError(f"{what}: missing '{part}'")
    obs, nxt = demo["obs"], demo.get("next_obs")
    used = ([image_key] if image_key else []) + list(state_keys)
    for k in used:
        if k not in obs:
            raise DatasetError(f"{what}/obs: missing {k!r}")
    T = len(obs[used[0]])
    for k in used:
        if len(obs[k]) != T:
            raise DatasetError(f"{what}/obs/{k} has {len(obs[k])} steps, obs/{used[0]} has {T}")
    if labelled and len(demo["actions"]) != T:
        raise DatasetError(f"{what}/actions has {len(demo['actions'])} steps, obs has {T}")
    num = demo.attrs.get("num_samples")
    if num is not None and int(num) != T:
        raise DatasetError(f"{what}: attrs num_samples is {int(num)} but obs has {T} steps")
    closing = nxt is not None and all(k in nxt and len(nxt[k]) == T for k in used)
    n_obs = T + 1 if closing else T
    if n_obs < 2:
        raise DatasetError(f"{what}: {T} step(s); an episode needs at least 2 observations")

    def step_block(src, a: int, b: int) -> dict:
        out = {}
        try:
            if image_key:
                img = np.asarray(src[image_key][a:b])
                if img.ndim != 4 or img.shape[3] != 3 or img.dtype != np.uint8:
                    raise DatasetError(f"{what}: {image_key} is {img.shape} {img.dtype}, expected (T, H, W, 3) uint8")
                out["image"] = _resize(img, size)
            if state_keys:
                parts = [np.asarray(src[k][a:b], np.float64).reshape(b - a, -1) for k in state_keys]
                for k, p in zip(state_keys, parts):
                    if p.shape[1] != widths[k]:
                        raise DatasetError(f"{what}: obs/{k} has width {p.shape[1]}, the first demo's is {widths[k]}")
                out["state"] = np.concatenate(parts, axis=1)
        except (OSError, ValueError, TypeError) as e:
            raise DatasetError(f"{what}: unreadable ({' '.join(str(e).split())})") from None
        return out

    with writer.begin_episode() as ep:
        for a in range(0, T, CHUNK):
            ep.add_observations(step_block(obs, a, min(a + CHUNK, T)))
        if closing:
            ep.add_observations(step_block(nxt, T - 1, T))
        if labelled:
            try:
                act = np.asarray(demo["actions"][()], np.float64)
            except (OSError, ValueError, TypeError) as e:
                raise DatasetError(f"{what}/actions: unreadable ({' '.join(str(e).split())})") from None
            if act.ndim != 2 or act.shape[1] != writer.action.dim:
                raise DatasetError(f"{what}/actions has shape {act.shape}, the first demo's width is {writer.action.dim}")
            if not np.isfinite(act).all():
                raise DatasetError(f"{what}/actions contains NaN or Inf")
            ep.add_actions(act if closing else act[:-1])
        ep.commit(source=demo.name.split("/")[-1])
    return n_obs
