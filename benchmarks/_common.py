"""What the benchmarks share: the machine record, the code version, resumable result files (latency.py,
throughput.py), synthetic datasets, and percentile helpers. Not a benchmark itself.

Result files hold {"machine": ..., "cells": {key: {...}}, ...}; a cell is one measurement, written
as soon as it is done, so an interrupted run picks up where it stopped (finished cells are skipped).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from clamkit.dataset import DatasetWriter
from clamkit.fileio import write_json_atomic
from clamkit.robot.metaworld import ACTION_SPEC as METAWORLD_ACTION  # noqa: F401 (needs no metaworld install)
from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict:
    """CPU model, cores, library versions: what a reader needs to compare numbers across machines."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    out = {"cpu": cpu, "cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
           "python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__}
    for mod in ("torch", "onnxruntime", "onnx", "mujoco"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    try:
        import torch

        out["torch_threads_default"] = torch.get_num_threads()
        out["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return out


def bundle_sha256(bundle: Path) -> str:
    """One hash over the bundle's files (names and contents)."""
    h = hashlib.sha256()
    for f in sorted(p for p in bundle.rglob("*") if p.is_file()):
        h.update(f.relative_to(bundle).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def bundle_key(bundle: Path, *parts: str, sha: str | None = None) -> str:
    """A result's name for a bundle: its folder, the parts (task, options) and its hash, so a bundle retrained under
    the same folder name neither reuses nor overwrites another's results. sha: bundle_sha256(bundle), if known."""
    return "-".join([bundle.resolve().name, *parts, (sha or bundle_sha256(bundle))[:8]])


def run_cli(name: str, args: list, report: Path) -> dict:
    """One run of a clamkit CLI that writes the JSON `report` (skipped when the report exists: resumable); returns
    the report plus the command and the machine load around the run. A run that exits non-zero but still wrote
    its report (a fault ended it; its report says why) counts; one that wrote nothing stops the benchmark."""
    if not report.exists():
        report.parent.mkdir(parents=True, exist_ok=True)
        before = load()
        cmd = [str(Path(sys.executable).parent / name), *map(str, args)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl")))
        if p.returncode != 0 and not report.exists():
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-800:]}")
        write_json_atomic(report, json.loads(report.read_text()) | {"load_before_after": [before, load()], "command": cmd})
    return json.loads(report.read_text())


def code_version(root: Path = ROOT) -> str:
    """The checkout's `git describe --always`, with "-dirty" when tracked files other than benchmarks/results/
    differ from it (a benchmark writing its own results does not make the code it ran dirty); "unknown" outside git."""
    p = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, cwd=root)
    version = p.stdout.strip()
    if not version:
        return "unknown"
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results"],
                             capture_output=True, text=True, cwd=root).stdout.strip()
    return version + ("-dirty" if changed else "")


def load() -> list[float]:
    """1/5/15-minute load averages: other work on the machine makes every figure noisier."""
    return [round(x, 2) for x in os.getloadavg()]


def stats_ms(seconds) -> dict:
    """p50/p90/p99/max/mean in ms of a list of durations in seconds."""
    a = np.asarray(seconds, np.float64) * 1e3
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 4), "p90": round(float(np.percentile(a, 90)), 4),
            "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4), "mean": round(float(a.mean()), 4)}


class Results:
    """A resumable JSON result file: cells keyed by name, saved after every cell."""

    def __init__(self, path: Path, meta: dict, redo: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(self.path.read_text()) if self.path.exists() and not redo else {}
        self.data = dict(meta) | {"machine": machine(), "cells": old.get("cells", {})}

    def have(self, key: str) -> bool:
        return key in self.data["cells"]

    def __getitem__(self, key: str) -> dict:
        return self.data["cells"][key]

    def put(self, key: str, cell: dict) -> dict:
        self.data["cells"][key] = cell | {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "loadavg": load()}
        self.save()
        return cell

    def save(self) -> None:
        write_json_atomic(self.path, plain(self.data))


def plain(x):
    """numpy scalars and arrays -> Python values (json cannot write np.bool_ or np.float32)."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


# ----------------------------------------------------------------------------- synthetic datasets


def synthetic_dataset(root: Path, obs: ObservationSpec, action: ActionSpec, episodes: int, T: int,
                      labelled: bool, seed: int, fps: float = 10.0) -> Path:
    """A dataset with the given specs whose content is meaningless but well-formed: states follow a
    random linear system, images are random pixels. For speed measurements only (weights trained on
    it are noise). Written once; an existing complete dataset is reused."""
    root = Path(root)
    meta = root / "meta.json"
    if meta.exists() and len(json.loads(meta.read_text())["episodes"]) >= episodes:
        return root
    w = DatasetWriter(root, observation=obs, action=action, fps=fps, robot="synthetic", task="benchmark")
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(action.low, np.float32), np.asarray(action.high, np.float32)
    for _ in range(len(w), episodes):
        a = rng.uniform(lo, hi, (T - 1, action.dim)).astype(np.float32)  # (T-1, A)
        arrays = {}
        for key, spec in obs.keys.items():
            if spec.dtype == "uint8":
                arrays[key] = rng.integers(0, 256, (T, *spec.shape), dtype=np.uint8)  # (T, H, W, 3)
            else:
                (D,) = spec.shape
                B = rng.normal(0, 0.1, (action.dim, D))
                x = np.cumsum(np.concatenate([rng.normal(0, 1, (1, D)), a @ B + rng.normal(0, 0.01, (T - 1, D))]), 0)
                arrays[key] = x.astype(spec.dtype)  # (T, D) random walk driven by the actions
        w.add_episode(arrays, a if labelled else None)
    return root


def state_spec(dim: int) -> ObservationSpec:
    return ObservationSpec({"state": ArraySpec((dim,), "float32")})


def image_spec(size: int) -> ObservationSpec:
    return ObservationSpec({"image": ArraySpec((size, size, 3), "uint8")})
