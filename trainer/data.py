"""Training data: dataset directories -> validated frame stores, window ids, resumable samplers.

Stores (two feed every algorithm, the third only the latent action models):
  unl  every episode of the --unlabelled datasets (demonstrations the policy imitates). Their actions, when the recording has them
       (MetaWorld experts do), are HIDDEN: only probes (probe/relabel_mse, probe/policy_action_mse)
       and the bc-expert oracle read them; CLAM, VQ and VPT never train on them.
  lab  the labelled episodes of the --labelled (play) datasets.
  lam  what the latent action model (clam's and vq's stage 1) trains on: the --pool datasets
       (observation-only video at any level of competence; never imitated, actions never read)
       plus unl. Without a pool it is unl itself.

A window is named by the global frame id g of o_t inside its store; the IDM window is frames
g-1, g, g+1 and its action is a_t (executed at o_t, producing o_{t+1}: Dataset.window_index's
convention). State data is loaded into one tensor per store (Dataset.concat-style) for speed;
pixel data is memory-mapped and gathered per batch unless it fits the in-memory budget.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from clamkit.dataset import Dataset, merge_stats
from clamkit.errors import UserError
from clamkit.specs import ActionSpec, ArraySpec

log = logging.getLogger(__name__)
DELTA_FLOOR = 1e-3  # normalised units: a dimension that moves less per step is treated as static
IN_MEMORY_BUDGET = 2 << 30  # bytes of raw pixels loaded into RAM when data.storage=auto


class FrameStore:
    """The frames of a list of (dataset, episode) pairs, addressed by one global frame id."""

    def __init__(self, name: str, episodes: list[tuple[Dataset, int]], key: str, in_memory: bool,
                 device: torch.device, with_actions: bool):
        self.name, self.key, self.device = name, key, device
        self.episodes = episodes
        self.lengths = np.array([ds.episodes[e]["length"] for ds, e in episodes], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.total = int(self.lengths.sum())
        self._arrays = [ds.episode(e)[key] for ds, e in episodes]  # memmaps
        self.frames = None
        if in_memory:
            frames = torch.from_numpy(np.concatenate([np.asarray(a) for a in self._arrays]))  # (total, *shape)
            self.frames = frames.to(device) if key == "state" else frames
        self.has_actions = with_actions and all(ds.is_labelled(e) for ds, e in episodes)
        self._actions = None
        if self.has_actions:
            rows = []
            for ds, e in episodes:
                a = np.asarray(ds.episode(e)["action"], np.float32)  # (T-1, A)
                rows += [a, np.full((1, a.shape[1]), np.nan, np.float32)]  # no a_t at the last frame
            self._actions = torch.from_numpy(np.concatenate(rows)).to(device)  # (total, A)

    def __len__(self) -> int:
        return len(self.episodes)

    def window_ids(self, eps=None, before: int = 1, after: int = 1) -> np.ndarray:
        """Global ids g of o_t for every t with o_{t-before} .. o_{t+after} in its episode, in episodes `eps`."""
        eps = range(len(self.episodes)) if eps is None else eps
        ids = [self.starts[i] + np.arange(before, self.lengths[i] - after) for i in eps]
        return np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)

    def get(self, ids: np.ndarray, offsets=(0,)) -> torch.Tensor:
        """Raw frames at ids + offset, (N, K, *shape) in the dataset dtype, on the training device."""
        ids = np.asarray(ids, np.int64)
        off = np.asarray(offsets, np.int64)
        if self.frames is not None:
            idx = torch.from_numpy(ids[:, None] + off[None]).to(self.frames.device)  # (N, K)
            # index_select on the flat ids, not frames[idx]: the same rows, ~9x faster for image frames on
            # the CPU (advanced indexing copies 64x64x3 uint8 rows element-wise; benchmarks/throughput.py).
            rows = self.frames.index_select(0, idx.reshape(-1))  # (N*K, *shape)
            return rows.reshape(*idx.shape, *self.frames.shape[1:]).to(self.device, non_blocking=True)  # (N, K, *shape)
        ep = np.searchsorted(self.starts, ids, side="right") - 1
        t = ids - self.starts[ep]
        out = np.stack([self._arrays[e][tt + off] for e, tt in zip(ep, t)])  # (N, K, *shape) from memmaps
        return torch.from_numpy(out).to(self.device, non_blocking=True)

    def actions(self, ids: np.ndarray) -> torch.Tensor:
        """a_t at frames ids (robot units), (N, A)."""
        if self._actions is None:
            raise UserError(f"the {self.name} data has no actions")
        return self._actions[torch.from_numpy(np.asarray(ids, np.int64)).to(self._actions.device)]


class Sampler:
    """I.i.d. minibatches from a fixed pool of window ids. Its numpy Generator is seeded from
    (seed, rank, name), so ranks draw different data, and its state goes into every checkpoint."""

    def __init__(self, name: str, pool: np.ndarray, batch: int, seed: int, rank: int):
        if len(pool) == 0:
            raise UserError(f"no training windows for '{name}' (episodes need at least 3 frames)")
        self.name, self.pool, self.batch = name, pool, int(batch)
        tag = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, rank, tag])))
        self.first_hash: str | None = None  # of the first batch drawn in this process (DDP check)

    def __call__(self) -> np.ndarray:
        ids = self.pool[self.rng.integers(0, len(self.pool), self.batch)]  # (batch,) window ids
        if self.first_hash is None:
            self.first_hash = hashlib.sha256(ids.tobytes()).hexdigest()[:16]
        return ids

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state


@dataclass
class TrainData:
    key: str                 # "state" | "image": what the models read
    obs_spec: ArraySpec      # raw per-step spec of that key
    action: ActionSpec
    fps: float
    unl: FrameStore
    lab: FrameStore
    unl_train: list[int]     # episode positions in unl
    unl_val: list[int]
    lab_train: list[int]
    lab_val: list[int]
    state_mean: np.ndarray | None
    state_std: np.ndarray | None
    delta_rms: np.ndarray | None  # RMS of o_{t+1} - o_t in normalised units (state), floored
    low: np.ndarray          # action normalisation range ([-1, 1] <-> [low, high]): the bounds
    high: np.ndarray
    fingerprint: str
    sources: dict            # {"unlabelled": [dirs], "labelled": [dirs], "pool": [dirs]}
    lam: FrameStore          # LAM training store: pool + unl episodes (unl itself without a pool)
    lam_train: list[int]     # episode positions in lam (held-out ones score probe/lam_val_fdm)
    lam_val: list[int]

    @property
    def hidden_actions(self) -> bool:
        """The unlabelled recording secretly has actions (diagnostics and bc-expert only)."""
        return self.unl.has_actions


def _split(n: int, frac: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Hold out ceil(frac * n) episodes (at least one when n >= 2 and frac > 0)."""
    order = rng.permutation(n).tolist()
    k = min(max(int(np.ceil(frac * n)), 1), n - 1) if (n >= 2 and frac > 0) else 0
    return sorted(order[k:]), sorted(order[:k])


def _open(dirs, role: str) -> list[Dataset]:
    if not dirs:
        raise UserError(f"no --{role} dataset given")
    return [Dataset(d) for d in dirs]


def fingerprint(datasets: list[Dataset]) -> str:
    """sha256 over the datasets' meta.json bytes, in command-line order."""
    h = hashlib.sha256()
    for ds in datasets:
        h.update((ds.root / "meta.json").read_bytes())
    return h.hexdigest()


def _obs_key(cfg, everything: list[Dataset]) -> tuple[str, ArraySpec]:
    """The observation key the models read (data.obs; auto: state when every dataset has it) and its spec,
    the same in every dataset."""
    key = cfg.data.obs
    if key == "auto":
        key = "state" if all("state" in ds.observation.keys for ds in everything) else "image"
    for ds in everything:
        if key not in ds.observation.keys:
            raise UserError(f"{ds.root}: has observations {sorted(ds.observation.keys)}, the config reads '{key}' (data.obs)")
    spec = everything[0].observation.keys[key]
    for ds in everything[1:]:
        other = ds.observation.keys[key]
        if other != spec:
            raise UserError(f"spec mismatch: {ds.root} has '{key}' {list(other.shape)} {other.dtype}, "
                            f"{everything[0].root} has {list(spec.shape)} {spec.dtype}")
    if key == "image" and (len(spec.shape) != 3 or spec.shape[2] != 3 or spec.dtype != "uint8"):
        raise UserError(f"{everything[0].root}: image observations must be uint8 (H, W, 3), got {list(spec.shape)} {spec.dtype}")
    if key == "state" and len(spec.shape) != 1:
        raise UserError(f"{everything[0].root}: state observations must be vectors, got shape {list(spec.shape)}")
    return key, spec


def _action_spec(lab_ds: list[Dataset], everything: list[Dataset]) -> ActionSpec:
    """The labelled data's action spec; every dataset that has actions must agree with it."""
    if not any(ds.action is not None for ds in lab_ds):
        raise UserError(f"{lab_ds[0].root}: the labelled dataset has no action spec")
    action = next(ds.action for ds in lab_ds if ds.action is not None)
    for ds in everything:
        if ds.action is not None and (ds.action.dim, ds.action.semantics) != (action.dim, action.semantics):
            raise UserError(f"spec mismatch: {ds.root} has {ds.action.dim}-D '{ds.action.semantics}' actions, "
                            f"the labelled data has {action.dim}-D '{action.semantics}'")
    return action


def _episodes(unl_ds, lab_ds, pool_ds):
    """(dataset, episode) pairs with the 3 frames a window needs: every unlabelled one (labels, if any, stay
    hidden), the labelled ones of --labelled, every pool one."""
    unl_eps = [(ds, i) for ds in unl_ds for i in range(len(ds)) if ds.episodes[i]["length"] >= 3]
    lab_eps = [(ds, i) for ds in lab_ds for i in range(len(ds)) if ds.is_labelled(i) and ds.episodes[i]["length"] >= 3]
    if not unl_eps:
        raise UserError(f"{', '.join(str(d.root) for d in unl_ds)}: no episodes with at least 3 frames")
    if not lab_eps:
        raise UserError(f"{', '.join(str(d.root) for d in lab_ds)}: no labelled episodes (record play data with actions)")
    pool_eps = [(ds, i) for ds in pool_ds for i in range(len(ds)) if ds.episodes[i]["length"] >= 3]
    if pool_ds and not pool_eps:
        raise UserError(f"{', '.join(str(d.root) for d in pool_ds)}: no pool episodes with at least 3 frames")
    return unl_eps, lab_eps, pool_eps


def _verify(key: str, unl_eps, lab_eps, pool_eps) -> None:
    """Contents, once: crc32 against meta.json and NaN/Inf, naming the episode file. Opening a Dataset reads only
    headers (it is memory-mapped); this pass reads every byte the training will use, once."""
    t0, seen = time.perf_counter(), set()
    keys = [(key, "action")] * len(unl_eps + lab_eps) + [(key,)] * len(pool_eps)  # a pool's actions are never read
    for (ds, i), k in zip(unl_eps + lab_eps + pool_eps, keys):
        if (str(ds.root), i) not in seen:
            seen.add((str(ds.root), i))
            ds.verify_episode(i, k)
    if time.perf_counter() - t0 > 1.0:
        log.info("verified %d episodes in %.1f s", len(seen), time.perf_counter() - t0)


def _in_memory(cfg, key: str, spec: ArraySpec, eps) -> bool:
    if cfg.data.storage != "auto":
        return cfg.data.storage == "ram"
    total = sum(ds.episodes[i]["length"] for ds, i in eps) * int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
    return key == "state" or total < IN_MEMORY_BUDGET


def _state_scaling(cfg, key: str, spec: ArraySpec, everything, lam: FrameStore, lab: FrameStore):
    """(mean, std, delta_rms) of the state: normalisation from meta.json's statistics, and the RMS one-step change
    of the normalised state per dimension (IDM/FDM input scaling). All None for images."""
    if key != "state":
        return None, None, None
    s = merge_stats(ds.stats[key] for ds in everything if key in ds.stats)
    if not s.get("count"):
        raise UserError(f"{everything[0].root}: meta.json has no statistics for '{key}'")
    mean = np.asarray(s["mean"], np.float32)
    std = np.maximum(np.asarray(s["std"], np.float32), cfg.data.std_floor)
    sq, n = np.zeros(spec.shape, np.float64), 0
    for store in (lam, lab):  # lam holds unl's episodes too
        f = (store.frames.cpu().numpy().astype(np.float64) - mean) / std  # (total, D)
        d = np.diff(f, axis=0)  # (total-1, D); drop the differences across episode boundaries
        keep = np.ones(len(d), bool)
        keep[store.starts[1:] - 1] = False
        sq += (d[keep] ** 2).sum(0)
        n += int(keep.sum())
    delta_rms = np.maximum(np.sqrt(sq / max(n, 1)), DELTA_FLOOR).astype(np.float32)
    return mean, std, delta_rms


def _action_range(action: ActionSpec, everything, lab_ds) -> tuple[np.ndarray, np.ndarray]:
    """The action normalisation range: the bounds, or the recorded range (padded) where they are not finite."""
    low, high = np.asarray(action.low, np.float32), np.asarray(action.high, np.float32)
    if np.isfinite(low).all() and np.isfinite(high).all() and (high - low > 0).all():
        return low, high
    s = merge_stats(ds.stats["action"] for ds in everything if ds.action is not None and "action" in ds.stats)
    if not s.get("count"):
        raise UserError(f"{lab_ds[0].root}: the action bounds are not finite and meta.json has no action statistics "
                        "to normalise with; record the data again or set finite bounds in meta.json")
    lo, hi = np.asarray(s["min"], np.float32), np.asarray(s["max"], np.float32)
    pad = np.maximum(0.05 * (hi - lo), 1e-3)
    low = np.where(np.isfinite(low), low, lo - pad)
    high = np.where(np.isfinite(high) & (high > low), high, hi + pad)
    log.warning("action bounds are not finite; normalising actions to the recorded range [%s, %s]", low, high)
    return low, high


def load_data(cfg, unlabelled: list[str], labelled: list[str], device: torch.device, pool: list[str] = ()) -> TrainData:
    """Open, validate and index the datasets named on the command line (one-line UserError on bad input)."""
    unl_ds, lab_ds = _open(unlabelled, "unlabelled"), _open(labelled, "labelled")
    pool_ds = [Dataset(d) for d in pool]
    everything = unl_ds + lab_ds + pool_ds
    key, spec = _obs_key(cfg, everything)
    action = _action_spec(lab_ds, everything)
    fps = {ds.fps for ds in everything}
    if len(fps) > 1:
        log.warning("datasets were recorded at different rates %s; the policy will use %s Hz", sorted(fps), everything[0].fps)

    unl_eps, lab_eps, pool_eps = _episodes(unl_ds, lab_ds, pool_ds)
    _verify(key, unl_eps, lab_eps, pool_eps)
    in_memory = _in_memory(cfg, key, spec, unl_eps + lab_eps + pool_eps)
    unl = FrameStore("unlabelled", unl_eps, key, in_memory, device, with_actions=True)
    lab = FrameStore("labelled", lab_eps, key, in_memory, device, with_actions=True)
    lam = FrameStore("pool+unlabelled", pool_eps + unl_eps, key, in_memory, device, with_actions=False) if pool_eps else unl
    mean, std, delta_rms = _state_scaling(cfg, key, spec, everything, lam, lab)
    low, high = _action_range(action, everything, lab_ds)

    rng = np.random.default_rng(cfg.run.seed)
    lab_train, lab_val = _split(len(lab), cfg.data.holdout, rng)
    unl_train, unl_val = _split(len(unl), cfg.data.holdout, rng)
    if pool_eps:  # held-out pool episodes score the LAM's reconstruction (label-free); unl keeps its own split
        pool_train, pool_val = _split(len(pool_eps), cfg.data.holdout, rng)
        n = len(pool_eps)
        lam_train, lam_val = pool_train + [n + i for i in unl_train], pool_val + [n + i for i in unl_val]
    else:
        lam_train, lam_val = unl_train, unl_val
    return TrainData(key=key, obs_spec=spec, action=action, fps=everything[0].fps, unl=unl, lab=lab,
                     unl_train=unl_train, unl_val=unl_val, lab_train=lab_train, lab_val=lab_val,
                     state_mean=mean, state_std=std, delta_rms=delta_rms, low=low, high=high, fingerprint=fingerprint(everything),
                     sources={"unlabelled": [str(d.root) for d in unl_ds], "labelled": [str(d.root) for d in lab_ds],
                              "pool": [str(d.root) for d in pool_ds]},
                     lam=lam, lam_train=lam_train, lam_val=lam_val)
