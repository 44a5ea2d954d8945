"""Importer throughput and memory: `clam-import videos` on a folder holding one 84x84 video, 5 and 10 minutes long.

    python benchmarks/importers.py                 # -> benchmarks/results/importers.json
    python benchmarks/importers.py --minutes 1 2   # smaller, for a quick look

Each import runs in a fresh subprocess (the real CLI), timed end to end, and reports its own peak RSS
(VmHWM, Linux). Bounded memory means the peak does not grow with the video's length:
the two sizes should have the same peak within 20% (a whole 10-minute 84x84 video at 30 fps is ~380 MB of
frames; the importer holds one chunk of 64). The source videos are synthetic (a moving square, H.264).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, code_version, load, machine  # noqa: E402

from clamkit.dataset import Dataset  # noqa: E402
from clamkit.fileio import write_json_atomic  # noqa: E402

FPS, SIZE = 30, 84


def make_video(path: Path, minutes: float) -> int:
    import av

    n = int(minutes * 60 * FPS)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        s.width = s.height = SIZE
        s.pix_fmt = "yuv420p"
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        for i in range(n):
            img[:] = 30
            x = (i * 2) % (SIZE - 10)
            img[20:30, x:x + 10] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return n


# The child reports its own peak from /proc/self/status (VmHWM: this process's high-water RSS since exec).
# Not getrusage/wait4: a child's ru_maxrss inherits the forking parent's high-water mark (here the benchmark
# process itself, with the video encoder loaded), which hid the importer's own figure.
CHILD = """import sys
from clamkit.importers.cli import main
try:
    main(sys.argv[1:])
finally:
    hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]
    print('VMHWM_KIB', hwm, file=sys.stderr)
"""


def import_once(src: Path, out: Path) -> dict:
    cmd = [sys.executable, "-c", CHILD, "videos", str(src), "--out", str(out), "--size", str(SIZE), "--quiet"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"import failed ({res.returncode}): {res.stderr[-2000:]}")
    hwm = int(next(ln.split()[1] for ln in res.stderr.splitlines() if ln.startswith("VMHWM_KIB")))
    frames = Dataset(out).num_steps
    return {"frames": frames, "seconds": round(dt, 2), "frames_per_s": round(frames / dt, 1), "peak_rss_mib": round(hwm / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs=2, default=[5.0, 10.0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "importers.json"))
    args = ap.parse_args()
    cells = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for minutes in sorted(args.minutes):
            folder = tmp / f"v{minutes:g}"
            folder.mkdir()
            t0 = time.perf_counter()
            n = make_video(folder / "video.mp4", minutes)
            gen = time.perf_counter() - t0
            cell = import_once(folder, tmp / f"ds{minutes:g}")
            cell.update({"minutes": minutes, "source_frames": n, "video_mb": round((folder / "video.mp4").stat().st_size / 2**20, 2),
                         "generate_seconds": round(gen, 1), "dataset_mb": round(sum(f.stat().st_size for f in (tmp / f"ds{minutes:g}").rglob("*") if f.is_file()) / 2**20, 1),
                         "load": load()})
            cells[f"{minutes:g}min"] = cell
            print(json.dumps({f"{minutes:g}min": cell}), flush=True)
            shutil.rmtree(tmp / f"ds{minutes:g}")
    small, big = (cells[f"{m:g}min"] for m in sorted(args.minutes))
    ratio = big["peak_rss_mib"] / small["peak_rss_mib"]
    result = {"benchmark": "importers", "what": f"clam-import videos, one {SIZE}x{SIZE} {FPS} fps H.264 video, --size {SIZE}",
              "machine": machine(), "code_version": code_version(), "cells": cells,
              "peak_ratio_large_to_small": round(ratio, 3), "bounded_within_20pct": bool(ratio <= 1.2)}
    write_json_atomic(Path(args.out), result)
    print(json.dumps({"peak_ratio_large_to_small": result["peak_ratio_large_to_small"], "out": args.out}))


if __name__ == "__main__":
    main()
