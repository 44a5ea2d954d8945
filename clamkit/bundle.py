"""The bundle: what `clam-export` writes and `clam-run` reads (DESIGN §5). numpy/json only.

    BUNDLE/policy.onnx     one graph: raw observation(s) in -> action out (robot units)
    BUNDLE/clam.json       specs, rate, provenance, parity report, sha256 of policy.onnx
    BUNDLE/policy.<gpu>-<trt>-<precision>.engine   optional TensorRT engine
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from clamkit.fileio import read_json, write_json_atomic
from clamkit.errors import BundleError
from clamkit.specs import ActionSpec, ObservationSpec, json_dict, json_float, json_int, json_list, json_str

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


def _optional_dict(d: dict, key: str) -> dict:
    v = d.get(key)
    return {} if v is None else dict(json_dict(v, key))


def _parse(d: dict) -> BundleMeta:
    """Every field of clam.json, type- and value-checked (ValueError naming the field)."""
    if d.get("output", "action") != "action":
        raise ValueError(f"output is {d['output']!r}; the runtime reads the graph output 'action'")
    if d.get("onnx", ONNX_NAME) != ONNX_NAME:
        raise ValueError(f"onnx is {d['onnx']!r}; a bundle's graph is {ONNX_NAME}")
    sha = json_str(d.get("onnx_sha256"), "onnx_sha256")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(f"onnx_sha256 {sha[:80]!r} is not a sha256 hex digest")
    valid = d.get("valid", False)
    if not isinstance(valid, bool):
        raise ValueError(f"valid must be true or false, got {valid!r}")
    return BundleMeta(observation=ObservationSpec.from_json(d.get("observation")), action=ActionSpec.from_json(d.get("action")),
                      fps=json_float(d.get("fps"), "fps", positive=True), la_dim=json_int(d.get("la_dim"), "la_dim", minimum=0),
                      inputs=[json_str(x, "inputs entry") for x in json_list(d.get("inputs"), "inputs")],
                      onnx_sha256=sha, algo=json_str(d.get("algo", "clam"), "algo"), valid=valid,
                      parity=_optional_dict(d, "parity"), provenance=_optional_dict(d, "provenance"),
                      camera=_optional_dict(d, "camera"), extra=_optional_dict(d, "extra"))


def read_meta(bundle: str | Path, check_hash: bool = True) -> BundleMeta:
    """Parse and validate clam.json; with check_hash, also that policy.onnx is the file exported."""
    bundle = Path(bundle)
    path = bundle / META_NAME
    if not bundle.is_dir():
        raise BundleError(f"{bundle}: no such bundle directory (make one with clam-export RUN --out {bundle})")
    if not path.is_file():
        raise BundleError(f"{path}: not found; is {bundle} a clamkit bundle?")
    d = read_json(path, BundleError)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise BundleError(f"{path}: not a clamkit bundle")
    if type(d.get("version")) is not int or d["version"] != VERSION:
        raise BundleError(f"{path}: bundle format version {d.get('version')!r} is not supported (this clamkit reads {VERSION})")
    try:
        meta = _parse(d)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise BundleError(f"{path}: malformed ({type(e).__name__}: {e})") from None
    if len(set(meta.inputs)) != len(meta.inputs) or sorted(meta.inputs) != sorted(meta.observation.keys):
        raise BundleError(f"{path}: inputs {meta.inputs} do not match observation keys {sorted(meta.observation.keys)}")
    if not meta.valid:
        raise BundleError(f"{path}: bundle is not marked valid (its parity check failed or export was interrupted); re-run clam-export")
    onnx_path = bundle / ONNX_NAME
    if not onnx_path.is_file():
        raise BundleError(f"{onnx_path}: missing")
    try:
        digest = sha256_file(onnx_path) if check_hash else meta.onnx_sha256
    except OSError as e:
        raise BundleError(f"{onnx_path}: cannot be read ({e.strerror or e})") from None
    if digest != meta.onnx_sha256:
        raise BundleError(f"{onnx_path}: does not match the sha256 recorded in {META_NAME}; re-export the bundle")
    return meta
