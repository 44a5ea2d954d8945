"""Observation and action specs shared by datasets, checkpoints, bundles and robots."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np

# Parsing meta.json / clam.json / policy meta: untrusted JSON. Every helper raises ValueError with a
# short reason; the file readers wrap it into DatasetError/BundleError naming the file.
MAX_ELEMENTS = 1 << 30  # per step; a larger observation is a corrupt spec, not a camera
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")  # an observation key is also a file name (KEY.npy)


def json_int(v, what: str, minimum: int | None = None) -> int:
    """An int from JSON: not a bool, not a float (1.5 would silently become 1)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} must be an integer, got {v!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {v}")
    return v


def json_float(v, what: str, finite: bool = True, positive: bool = False) -> float:
    """A number from JSON (int or float, not a bool or a string), finite unless finite=False (NaN never)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} must be a number, got {v!r}")
    try:
        v = float(v)
    except OverflowError:
        raise ValueError(f"{what} is too large ({v})") from None
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"{what} must be a finite number, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{what} must be > 0, got {v}")
    return v


def json_str(v, what: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{what} must be a string, got {v!r}")
    return v


def json_dict(v, what: str) -> dict:
    if not isinstance(v, dict):
        raise ValueError(f"{what} must be a mapping, got {type(v).__name__}")
    return v


def json_list(v, what: str) -> list:
    if not isinstance(v, list):
        raise ValueError(f"{what} must be a list, got {type(v).__name__}")
    return v


@dataclass(frozen=True)
class ArraySpec:
    """One observation key: per-step shape and dtype ("state": (39,) float32, "image": (64, 64, 3) uint8)."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        np.dtype(self.dtype)  # raises TypeError on a bad dtype name

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: dict, what: str = "observation") -> "ArraySpec":
        """Strict: shape a list of ints >= 1, dtype a numeric numpy dtype name (ValueError otherwise)."""
        d = json_dict(d, what)
        shape = [json_int(s, f"{what} shape entry", minimum=1) for s in json_list(d.get("shape"), f"{what} shape")]
        if math.prod(shape) > MAX_ELEMENTS:
            raise ValueError(f"{what} shape {shape} has more than {MAX_ELEMENTS} elements per step")
        dtype = json_str(d.get("dtype"), f"{what} dtype")
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            raise ValueError(f"{what} dtype {dtype!r} is not a numpy dtype") from None
        if kind not in "biuf":
            raise ValueError(f"{what} dtype {dtype!r} is not numeric (bool, int, uint or float)")
        return cls(shape=tuple(shape), dtype=dtype)


@dataclass(frozen=True)
class ActionSpec:
    """Continuous action vector with bounds. `semantics` names the convention, e.g.
    "ee_delta_xyz_rpy+gripper" (WidowX), "metaworld_xyz+gripper", "dmc:reacher-easy"."""

    dim: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    semantics: str = "generic"

    def __post_init__(self):
        object.__setattr__(self, "low", tuple(float(x) for x in self.low))
        object.__setattr__(self, "high", tuple(float(x) for x in self.high))
        if len(self.low) != self.dim or len(self.high) != self.dim:
            raise ValueError(f"action bounds have {len(self.low)}/{len(self.high)} entries, dim is {self.dim}")
        if any(math.isnan(x) for x in self.low + self.high):
            raise ValueError("action bounds contain NaN")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError("action low bound above high bound")

    def to_json(self) -> dict:
        return asdict(self) | {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_json(cls, d: dict) -> "ActionSpec":
        """Strict: dim an int >= 1, low/high lists of dim numbers (±inf allowed: unbounded), semantics a string."""
        d = json_dict(d, "action")
        dim = json_int(d.get("dim"), "action dim", minimum=1)
        low = [json_float(x, "action low", finite=False) for x in json_list(d.get("low"), "action low")]
        high = [json_float(x, "action high", finite=False) for x in json_list(d.get("high"), "action high")]
        return cls(dim=dim, low=low, high=high, semantics=json_str(d.get("semantics", "generic"), "action semantics"))


@dataclass(frozen=True)
class ObservationSpec:
    """The keys a policy reads. Convention: "state" (float vector) and/or "image" (uint8 HWC)."""

    keys: dict[str, ArraySpec] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: v.to_json() for k, v in self.keys.items()}

    @classmethod
    def from_json(cls, d: dict) -> "ObservationSpec":
        """Strict: {key: ArraySpec json}; a key is a plain name (it is also a file name) and never "action"."""
        keys = {}
        for k, v in json_dict(d, "observation").items():
            if not _KEY.fullmatch(k) or k == "action":
                raise ValueError(f"observation key {k!r} is not a valid name (letters, digits, _ and -; not 'action')")
            keys[k] = ArraySpec.from_json(v, f"observation '{k}'")
        return cls(keys)


def check_compatible(what: str, want: ObservationSpec | ActionSpec, have: ObservationSpec | ActionSpec) -> None:
    """Raise SpecMismatch with a one-line reason when `have` cannot serve `want`."""
    from clamkit.errors import SpecMismatch

    if isinstance(want, ActionSpec):
        if want.dim != have.dim:
            raise SpecMismatch(f"{what}: policy outputs {want.dim}-D actions, robot takes {have.dim}-D")
        if want.semantics != have.semantics:
            raise SpecMismatch(f"{what}: policy actions mean '{want.semantics}', robot expects '{have.semantics}'")
        return
    for key, spec in want.keys.items():
        if key not in have.keys:
            raise SpecMismatch(f"{what}: policy needs observation '{key}' {list(spec.shape)}, robot/camera provide {sorted(have.keys)}")
        got = have.keys[key]
        if key == "image":
            continue  # the runtime resizes frames to the bundle's size; channel count must still agree
        if got.shape != spec.shape:
            raise SpecMismatch(f"{what}: observation '{key}' has shape {list(got.shape)}, policy expects {list(spec.shape)}")
    if "image" in want.keys and "image" in have.keys and want.keys["image"].shape[-1] != have.keys["image"].shape[-1]:
        raise SpecMismatch(f"{what}: camera gives {have.keys['image'].shape[-1]} channels, policy expects {want.keys['image'].shape[-1]}")


