"""Telemetry for the control loop: per-tick latencies, missed deadlines, camera-to-action age,
safety counters and episode outcomes; a compact live log line and a JSON report.

    tel = Telemetry(hz=5)
    tel.tick(infer_s=..., tick_s=..., age_s=..., missed=False, stages=(...))   # once per tick (the loop does this)
    tel.summary()                                                # dict: latency p50/p99/max, ...
    tel.write(Path("report.json"), extra={...})
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from clamkit.fileio import write_json_atomic
from clamkit.outcomes import summarize

log = logging.getLogger(__name__)

# The parts of a tick besides inference, in order: camera read + frame watchdog, robot state, building the
# graph's inputs (numpy work on the frame, if any), safety layer, robot.send_action.
STAGES = ("capture", "robot_state", "preprocess", "safety", "send")


def _stats_ms(x: list[float]) -> dict:
    """p50/p99/max/mean in milliseconds of a list of seconds."""
    if not x:
        return {"n": 0}
    a = np.asarray(x, dtype=np.float64) * 1e3
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4), "mean": round(float(a.mean()), 4)}


class Telemetry:
    """Collects what the loop measured. `live_every`: log a live line every N ticks (0 = never)."""

    def __init__(self, hz: float = 0.0, live_every: int = 0):
        self.hz, self.live_every = float(hz), int(live_every)
        self.infer_s: list[float] = []   # backend.infer only
        self.tick_s: list[float] = []    # camera read -> action sent (the whole tick body, without the sleep)
        self.age_s: list[float] = []     # camera frame capture -> action sent
        self.stage_s: dict[str, list[float]] = {k: [] for k in STAGES}  # the tick body, stage by stage
        self.missed = 0
        self.ticks = 0
        self.episodes: list[dict] = []
        self.safety = None               # a SafetyLayer; its counters go into the summary
        self.started = time.perf_counter()
        self.stop_reason = "running"
        self._live_from = 0

    def tick(self, infer_s: float, tick_s: float, age_s: float | None = None, missed: bool = False,
             stages: tuple[float, ...] | None = None) -> None:
        """stages: seconds of each of STAGES in this tick (inference is infer_s)."""
        self.ticks += 1
        if stages is not None:
            for k, v in zip(STAGES, stages):
                self.stage_s[k].append(v)
        self.infer_s.append(infer_s)
        self.tick_s.append(tick_s)
        if age_s is not None:
            self.age_s.append(age_s)
        self.missed += bool(missed)
        if self.live_every and self.ticks % self.live_every == 0:
            log.info(self.live_line())

    def episode(self, info: dict) -> None:
        self.episodes.append(dict(info))

    def live_line(self) -> str:
        """'tick 250 ep 2 | infer 0.08/0.21 ms | tick 0.30/0.9 ms | missed 0 | clip 3 nan 0' (p50/p99 of the last window)."""
        i0, self._live_from = self._live_from, self.ticks
        inf, tk = _stats_ms(self.infer_s[i0:]), _stats_ms(self.tick_s[i0:])
        parts = [f"tick {self.ticks} ep {len(self.episodes) + 1}"]
        if inf["n"]:
            parts.append(f"infer {inf['p50']:.2f}/{inf['p99']:.2f} ms | tick {tk['p50']:.2f}/{tk['p99']:.2f} ms")
        if self.age_s[i0:]:
            parts.append(f"age {_stats_ms(self.age_s[i0:])['p50']:.1f} ms")
        parts.append(f"missed {self.missed}")
        if self.safety is not None:
            c = self.safety.counters
            parts.append(f"clip {c.clipped} nan {c.nonfinite} rate {c.rate_limited} ws {c.workspace_clamped}")
        return " | ".join(parts)

    def summary(self) -> dict:
        out: dict = {"stop_reason": self.stop_reason, "ticks": self.ticks, "hz": self.hz,
                     "seconds": round(time.perf_counter() - self.started, 3),
                     "latency_ms": {"infer": _stats_ms(self.infer_s), "tick": _stats_ms(self.tick_s),
                                    "camera_to_action": _stats_ms(self.age_s),
                                    "stages": {k: _stats_ms(v) for k, v in self.stage_s.items() if v}},
                     "missed_deadlines": self.missed,
                     "safety": self.safety.counters.to_json() if self.safety is not None else {},
                     "episodes": self.episodes}
        return out | summarize(self.episodes)

    def write(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write summary() (+ extra) as JSON, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, (extra or {}) | self.summary())
        return path


def format_summary(s: dict) -> str:
    """The few lines a user reads at the end of clam-run / clam-eval."""
    lines = []
    n = len(s.get("episodes", []))
    if "success_rate" in s:
        lines.append(f"success     {s['success_rate']:.2f} over {n} episode(s)")
    if "mean_return" in s:
        lines.append(f"return      {s['mean_return']:.1f} (mean over {n} episode(s))")
    lat = s.get("latency_ms", {})
    for key, label in (("infer", "inference"), ("tick", "tick"), ("camera_to_action", "cam->action")):
        st = lat.get(key, {})
        if st.get("n"):
            lines.append(f"{label:<11} p50 {st['p50']:.2f} ms  p99 {st['p99']:.2f} ms  max {st['max']:.2f} ms")
    hz = s.get("hz") or 0
    lines.append(f"ticks       {s.get('ticks', 0)} at {'max rate' if not hz else f'{hz:g} Hz'}, "
                 f"missed deadlines {s.get('missed_deadlines', 0)}, stopped: {s.get('stop_reason')}")
    faults = [e["fault"] for e in s.get("episodes", []) if e.get("fault")]
    if faults:
        lines.append(f"faults      {len(faults)} episode(s) ended by a fault, first: {faults[0]}")
    saf = {k: v for k, v in s.get("safety", {}).items() if v}
    if saf:
        lines.append("safety      " + ", ".join(f"{k} {v}" for k, v in saf.items()))
    return "\n".join(lines)
