"""The bundle: what `clam-export` writes and `clam-run` reads (DESIGN §5). numpy/json only.

    BUNDLE/policy.onnx     one graph: raw observation(s) in -> action out (robot units)
    BUNDLE/clam.json       specs, rate, provenance, parity report, sha256 of policy.onnx
    BUNDLE/policy.<gpu>-<trt>-<precision>.engine   optional TensorRT engine
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from clamkit.dataset import write_json_atomic
from clamkit.errors import BundleError
from clamkit.specs import ActionSpec, ObservationSpec

FORMAT = "clamkit-bundle"
VERSION = 1
ONNX_NAME = "policy.onnx"
META_NAME = "clam.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class BundleMeta:
    """clam.json, parsed. `inputs` are the ONNX input names in order (observation keys); output is "action"."""

    observation: ObservationSpec
    action: ActionSpec
    fps: float
    la_dim: int
    inputs: list[str]
    onnx_sha256: str
    algo: str = "clam"
    valid: bool = False
    parity: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    camera: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "algo": self.algo, "valid": self.valid,
                "observation": self.observation.to_json(), "action": self.action.to_json(), "fps": self.fps,
                "la_dim": self.la_dim, "inputs": self.inputs, "output": "action", "onnx": ONNX_NAME,
                "onnx_sha256": self.onnx_sha256, "camera": self.camera, "parity": self.parity,
                "provenance": self.provenance, "extra": self.extra}


def write_meta(bundle: str | Path, meta: BundleMeta) -> Path:
    path = Path(bundle) / META_NAME
    write_json_atomic(path, meta.to_json())
    return path


def read_meta(bundle: str | Path, check_hash: bool = True) -> BundleMeta:
    """Parse and validate clam.json; with check_hash, also that policy.onnx is the file exported."""
    bundle = Path(bundle)
    path = bundle / META_NAME
    if not bundle.is_dir():
        raise BundleError(f"{bundle}: no such bundle directory (make one with clam-export RUN --out {bundle})")
    if not path.is_file():
        raise BundleError(f"{path}: not found; is {bundle} a clamkit bundle?")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise BundleError(f"{path}: not a clamkit bundle")
    if d.get("version") != VERSION:
        raise BundleError(f"{path}: bundle format version {d.get('version')!r} is not supported (this clamkit reads {VERSION})")
    try:
        meta = BundleMeta(observation=ObservationSpec.from_json(d["observation"]), action=ActionSpec.from_json(d["action"]),
                          fps=float(d["fps"]), la_dim=int(d["la_dim"]), inputs=[str(x) for x in d["inputs"]],
                          onnx_sha256=str(d["onnx_sha256"]), algo=str(d.get("algo", "clam")), valid=bool(d.get("valid")),
                          parity=dict(d.get("parity") or {}), provenance=dict(d.get("provenance") or {}),
                          camera=dict(d.get("camera") or {}), extra=dict(d.get("extra") or {}))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"{path}: malformed ({type(e).__name__}: {e})") from None
    if sorted(meta.inputs) != sorted(meta.observation.keys):
        raise BundleError(f"{path}: inputs {meta.inputs} do not match observation keys {sorted(meta.observation.keys)}")
    if not meta.valid:
        raise BundleError(f"{path}: bundle is not marked valid (its parity check failed or export was interrupted); re-run clam-export")
    onnx_path = bundle / ONNX_NAME
    if not onnx_path.is_file():
        raise BundleError(f"{onnx_path}: missing")
    if check_hash and sha256_file(onnx_path) != meta.onnx_sha256:
        raise BundleError(f"{onnx_path}: does not match the sha256 recorded in {META_NAME}; re-export the bundle")
    return meta
