"""Parity: does the exported graph compute what the torch policy computes? numpy + onnxruntime only.

Everything here is torch-free so the TensorRT path (`clam-export BUNDLE --trt`, on the robot)
can use it. The torch side lives in clamkit.export.onnx_export; its outputs arrive here as
numpy arrays.

Two numbers, per batch size, logged the way nanoGPT logs MFU:
    max_abs_error  max |a_ref - a_got| over every action component, in robot units
    cosine         cos(a_ref, a_got) with all actions of the batch flattened into one vector
The bundle is valid only when every check is within tolerance (max_abs_error <= 1e-4,
cosine >= 0.9999 for ONNX and TensorRT fp32; looser for TensorRT fp16).

The reference inputs and torch outputs are saved in the bundle as parity.npz, so an engine
built later from the bundle alone is checked against torch, not against onnxruntime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clamkit.errors import UserError

log = logging.getLogger(__name__)

PARITY_NAME = "parity.npz"


class ParityError(UserError):
    """The exported graph (ONNX or TensorRT engine) does not reproduce the torch policy."""


@dataclass(frozen=True)
class Tolerance:
    """Pass when max_abs_error <= max_abs and cosine >= cosine."""

    max_abs: float = 1e-4
    cosine: float = 0.9999

    def to_json(self) -> dict:
        return {"max_abs_error": self.max_abs, "cosine": self.cosine}


ONNX_TOLERANCE = Tolerance()
TRT_FP32_TOLERANCE = Tolerance()
# fp16 keeps ~3 significant digits; tanh-bounded actions of order 1 land within ~1e-2.
TRT_FP16_TOLERANCE = Tolerance(max_abs=2e-2, cosine=0.999)


def compare(ref: np.ndarray, got: np.ndarray) -> dict:
    """max abs error and cosine between two action batches of the same shape."""
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        raise ParityError(f"exported graph returns actions of shape {list(got.shape)}, torch returns {list(ref.shape)}")
    if not np.all(np.isfinite(got)):
        return {"max_abs_error": float("inf"), "cosine": float("nan"), "finite": False}
    err = float(np.max(np.abs(ref - got))) if ref.size else 0.0
    a, b = ref.ravel(), got.ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-12 and nb < 1e-12:
        cos = 1.0  # both (near) zero: the direction is undefined, the values agree
    elif na < 1e-12 or nb < 1e-12:
        cos = 0.0
    else:
        cos = float(np.dot(a, b) / (na * nb))
    return {"max_abs_error": err, "cosine": cos}


def passes(result: dict, tol: Tolerance) -> bool:
    # NaN compares False, so a NaN cosine fails
    return bool(result["max_abs_error"] <= tol.max_abs and result["cosine"] >= tol.cosine)


def summarize(checks: list[dict], tol: Tolerance, **info) -> dict:
    """Fold per-batch checks into the clam.json parity report (worst case over all checks)."""
    worst_err = max(c["max_abs_error"] for c in checks)
    worst_cos = min(c["cosine"] for c in checks)
    report = {
        "max_abs_error": worst_err,
        "cosine": worst_cos,
        "batch_sizes": sorted({int(c["batch"]) for c in checks}),
        "tolerance": tol.to_json(),
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
    }
    report.update(info)
    return report


def describe_failure(what: str, report: dict) -> str:
    """One line naming the worst failing check."""
    bad = [c for c in report["checks"] if not c["passed"]] or report["checks"]
    worst = max(bad, key=lambda c: (c["max_abs_error"], -c["cosine"]))
    tol = report["tolerance"]
    return (f"{what} parity check failed: batch {worst['batch']} ({worst['source']} observations) "
            f"max|Δ| {worst['max_abs_error']:.3g} (tolerance {tol['max_abs_error']:g}), "
            f"cosine {worst['cosine']:.7f} (tolerance {tol['cosine']:g})")


def log_report(what: str, report: dict) -> None:
    for c in report["checks"]:
        log.info("parity %s batch %-3d %-8s max|Δ| %.2e  cos %.9f  %s", what, c["batch"], c["source"],
                 c["max_abs_error"], c["cosine"], "ok" if c["passed"] else "FAIL")


# ----------------------------------------------------------------------------- onnxruntime


class OnnxRunner:
    """onnxruntime on the CPU EP: the reference backend for the ONNX parity check."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_types = {i.name: i.type for i in self.session.get_inputs()}

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["action"], {k: feeds[k] for k in self.input_names})[0]


ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(double)": "float64",
             "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(float16)": "float16", "tensor(bool)": "bool"}


def check_inputs(runner: OnnxRunner, expected: dict[str, str]) -> None:
    """The graph must take exactly the observation keys, with the dtypes the robot delivers."""
    if sorted(runner.input_names) != sorted(expected):
        raise ParityError(f"exported graph takes inputs {runner.input_names}, the policy declares {sorted(expected)}")
    for name, dtype in expected.items():
        got = ORT_TYPES.get(runner.input_types[name], runner.input_types[name])
        if got != dtype:
            hint = " (image preprocessing must live inside the graph: uint8 HWC in)" if name == "image" else ""
            raise ParityError(f"exported graph input '{name}' is {got}, the observation spec says {dtype}{hint}")


# ----------------------------------------------------------------------------- reference set


@dataclass
class ParitySet:
    """Recorded observations and the torch policy's actions for them: what every backend must reproduce.

    `inputs[k]` has `batch` rows; `action` is torch at that batch size; `action_b1[i]` is torch
    on row i alone (batch 1), for the first `n_single` rows.
    """

    inputs: dict[str, np.ndarray]
    action: np.ndarray
    action_b1: np.ndarray
    source: str = "recorded"

    @property
    def batch(self) -> int:
        return int(self.action.shape[0])

    def save(self, path: Path) -> None:
        arrays = {f"input.{k}": v for k, v in self.inputs.items()}
        np.savez_compressed(path, action=self.action, action_b1=self.action_b1, **arrays)

    @classmethod
    def load(cls, path: Path) -> "ParitySet":
        try:
            with np.load(path) as z:
                inputs = {k[len("input."):]: z[k] for k in z.files if k.startswith("input.")}
                return cls(inputs=inputs, action=z["action"], action_b1=z["action_b1"])
        except (OSError, KeyError, ValueError) as e:
            raise UserError(f"{path}: cannot read the parity reference ({e}); re-export the bundle") from None


def check_backend(what: str, run, sets: list[ParitySet], tol: Tolerance) -> list[dict]:
    """Run `run(feeds) -> actions` at batch 1 (each single row) and at the full batch of every set."""
    checks = []
    for ps in sets:
        singles = [run({k: v[i : i + 1] for k, v in ps.inputs.items()}) for i in range(len(ps.action_b1))]
        r = compare(ps.action_b1, np.concatenate(singles, 0))
        checks.append({"batch": 1, "source": ps.source, "n": len(singles), **r, "passed": passes(r, tol)})
        r = compare(ps.action, run(ps.inputs))
        checks.append({"batch": ps.batch, "source": ps.source, "n": ps.batch, **r, "passed": passes(r, tol)})
    return checks
