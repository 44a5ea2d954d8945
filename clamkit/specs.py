"""Observation and action specs shared by datasets, checkpoints, bundles and robots."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np




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
    def from_json(cls, d: dict) -> "ArraySpec":
        return cls(shape=tuple(d["shape"]), dtype=str(d["dtype"]))


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
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError("action low bound above high bound")

    def to_json(self) -> dict:
        return asdict(self) | {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_json(cls, d: dict) -> "ActionSpec":
        return cls(dim=int(d["dim"]), low=d["low"], high=d["high"], semantics=str(d.get("semantics", "generic")))


@dataclass(frozen=True)
class ObservationSpec:
    """The keys a policy reads. Convention: "state" (float vector) and/or "image" (uint8 HWC)."""

    keys: dict[str, ArraySpec] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: v.to_json() for k, v in self.keys.items()}

    @classmethod
    def from_json(cls, d: dict) -> "ObservationSpec":
        return cls({k: ArraySpec.from_json(v) for k, v in d.items()})


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


