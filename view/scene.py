"""What clam-view shows, read from a dataset, a run or rollouts (numpy; torch only for a RUN's latents)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clamkit.dataset import FORMAT, Dataset
from clamkit.fileio import read_json
from clamkit.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Track:
    """One episode as the viewer shows it (arrays may be memory-mapped)."""

    name: str
    fps: float
    length: int                          # T observations
    frames: np.ndarray | None = None     # (T, H, W, 3) uint8
    state: np.ndarray | None = None      # (T, D)
    actions: np.ndarray | None = None    # (T-1, A): a_t, true (recorded) actions
    decoded: np.ndarray | None = None    # (T, A): d(z_t), the decoded latent relabel; NaN where no window
    latents: np.ndarray | None = None    # (T, Z): z_t from the IDM; NaN where no window
    success: bool | None = None
    task: str = ""


@dataclass
class Scene:
    kind: str                            # "dataset" | "rollouts" | "run"
    source: str
    tracks: list[Track] = field(default_factory=list)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # a run's metrics.jsonl
    notes: list[str] = field(default_factory=list)


def _tracks(ds: Dataset, episodes: list[int]) -> list[Track]:
    out = []
    for i in episodes:
        e, arr = ds.episodes[i], ds.episode(i)
        frames = next((arr[k] for k, s in ds.observation.keys.items() if len(s.shape) == 3 and s.shape[2] == 3), None)
        succ = e.get("success")
        out.append(Track(name=f"episode_{i:06d}", fps=ds.fps, length=e["length"], frames=frames, state=arr.get("state"), actions=arr.get("action"),
                         success=bool(succ) if isinstance(succ, (bool, int, float)) else None,
                         task=str(e.get("task") or ds.meta.get("task") or "")))
    return out


def load_dataset(path: Path, max_episodes: int) -> Scene:
    ds = Dataset(path)
    if not len(ds):
        raise UserError(f"{path}: the dataset has no episodes")
    eps = list(range(min(len(ds), max_episodes)))
    kind = "rollouts" if any("success" in ds.episodes[i] for i in range(len(ds))) else "dataset"
    scene = Scene(kind, str(path), _tracks(ds, eps))
    if kind == "rollouts":
        s = ds.summary()
        scene.notes.append(f"success rate {s.get('success_rate', float('nan')):.2f} over {s['episodes']} episodes")
    return scene


def _curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    path = run / "metrics.jsonl"
    if not path.is_file():
        return curves
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line of a killed run
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            continue
        for k, v in rec.items():
            if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool):
                curves.setdefault(k, []).append((rec["step"], float(v)))
    return curves


def _run_latents(run: Path, datasets: list[Path], max_episodes: int) -> list[Track]:
    """z_t (the frozen IDM's relabels, from RUN/checkpoint.pt) and d(z_t) (RUN/policy.pt's decoder, in robot
    units) for the unlabelled episodes the run trained on: `datasets` are its --unlabelled, in order."""
    import torch

    from clamkit.trainer.deploy import load_policy
    from clamkit.trainer.integrity import verify

    ckpt_path = run / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise UserError(f"{ckpt_path}: missing; clam-view needs the run's checkpoint for the latent relabels")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        verify(ckpt, ckpt_path, hint="restore it from a copy")
        z = ckpt["algo_state"]["extra"]["relabels"].float()  # (frames, Z), NaN where no window
    except UserError:
        raise
    except (KeyError, TypeError) as e:
        raise UserError(f"{ckpt_path}: has no latent relabels (not a CLAM run, or stopped before the relabel stage: {e})") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many types on a damaged file
        raise UserError(f"{ckpt_path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    policy, meta = load_policy(run)
    if policy.decoder is None:
        raise UserError(f"{run}: the policy has no action decoder (algo {meta.get('algo')!r} is not latent)")
    with torch.no_grad():
        ok = torch.isfinite(z).all(1)
        dec = torch.full((len(z), policy.low.numel()), float("nan"))
        dec[ok] = policy.unnormalize(policy.decoder(z[ok]))  # (n, A) robot units
    # The trainer's frame order: every --unlabelled dataset in order, its episodes of >= 3 frames in order.
    opened = [Dataset(d) for d in datasets]
    eps = [(ds, i) for ds in opened for i in range(len(ds)) if ds.episodes[i]["length"] >= 3]
    total = sum(ds.episodes[i]["length"] for ds, i in eps)
    if total != len(z):
        raise UserError(f"{run}: the checkpoint holds relabels for {len(z)} frames, the datasets given have {total} in "
                        "episodes of 3+ frames; pass the run's --unlabelled datasets, in the same order")
    tracks, start = [], 0
    for ds, i in eps:
        T = ds.episodes[i]["length"]
        if len(tracks) < max_episodes:
            t = _tracks(ds, [i])[0]
            t.name = f"{ds.root.name}/episode_{i:06d}"
            t.latents, t.decoded = z[start:start + T].numpy(), dec[start:start + T].numpy()
            tracks.append(t)
        start += T
    return tracks


def load_run(path: Path, datasets: list[Path], max_episodes: int) -> Scene:
    scene = Scene("run", str(path), curves=_curves(path))
    if datasets:
        scene.tracks = _run_latents(path, datasets, max_episodes)
    else:
        scene.notes.append("pass --data with the run's --unlabelled datasets to see decoded latent relabels")
    if not scene.curves and not scene.tracks:
        raise UserError(f"{path}: no metrics.jsonl and no --data; nothing to show")
    return scene


def load(path: str | Path, datasets: list[str | Path] = (), max_episodes: int = 6) -> Scene:
    """DATASET (clamkit dataset), ROLLOUTS (a dataset whose episodes carry success marks, e.g. clam-run --record)
    or RUN (a clam-train output directory)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    meta = path / "meta.json"
    if meta.is_file() and isinstance(m := read_json(meta), dict) and m.get("format") == FORMAT:
        return load_dataset(path, max_episodes)
    if any((path / f).is_file() for f in ("policy.pt", "checkpoint.pt", "metrics.jsonl")):
        return load_run(path, [Path(d) for d in datasets], max_episodes)
    raise UserError(f"{path}: neither a clamkit dataset (meta.json) nor a training run (policy.pt, metrics.jsonl)")
