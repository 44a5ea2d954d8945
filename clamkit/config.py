"""YAML configs -> nested dataclasses, with type-checked `--set a.b=value` overrides. numpy-free.

A config is a tree of dataclasses. Each field is typed (int, float, str, bool, list[int],
list[float], list[str], `X | None`, or a nested dataclass) and each class validates itself in
`__post_init__` by raising ConfigError naming the field. Loading never guesses:

- an unknown key (in the file or in --set) is a ConfigError naming it, with the closest match;
- a value of the wrong type is a ConfigError naming the key, the value and the wanted type
  (an int is accepted where a float is wanted, nothing else is converted);
- every override is echoed ("override lam.steps: 1000 -> 500") so the log shows what ran.

>>> cfg, echo = load_config(TrainConfig, "configs/smoke.yaml", ["lam.steps=200", "algo=vq"])
>>> save_config(cfg, "runs/x/config.yaml")          # the resolved config, next to the outputs
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from clamkit.errors import ConfigError
from clamkit.fileio import write_text_atomic


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(tp, value, key: str):
    """Return `value` as type `tp` or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_value(a, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key '{key}': {value!r} is not of type {_type_name(tp)}")
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': {value!r} is not a list of {_type_name(item)}")
        return [_check_value(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping of {sorted(f.name for f in dataclasses.fields(tp))}, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "3e-4" as a string; accept it where a float is wanted
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise ConfigError(f"config key '{key}': {value!r} is too large") from None
            if not math.isfinite(value):  # .nan/.inf: no field means "infinite"; NaN would slip past every bound check
                raise ConfigError(f"config key '{key}': {value!r} is not a finite number")
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"config key '{key}': unsupported field type {tp}")
    raise ConfigError(f"config key '{key}': {value!r} is not of type {_type_name(tp)}")


def _unknown(key: str, choices) -> ConfigError:
    section, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, list(choices), n=1)
    full = f"{section}.{close[0]}" if close and section else (close[0] if close else "")
    hint = f" (did you mean '{full}'?)" if close else f" (known: {', '.join(sorted(choices))})"
    return ConfigError(f"unknown config key '{key}'{hint}")


def from_dict(cls, d: dict | None, prefix: str = ""):
    """Build dataclass `cls` from a (nested) dict; unknown keys and wrong types raise ConfigError."""
    d = d or {}
    if not isinstance(d, dict):
        raise ConfigError(f"config{' key ' + repr(prefix[:-1]) if prefix else ''}: expected a mapping, got {d!r}")
    hints = _hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in d.items():
        if k not in fields:
            raise _unknown(f"{prefix}{k}", fields)
        kwargs[k] = _check_value(hints[k], v, f"{prefix}{k}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config{' section ' + repr(prefix[:-1]) if prefix else ''}: {e}") from None


def to_dict(cfg) -> dict:
    """Plain nested dict of a config (for YAML, checkpoints and TensorBoard)."""
    return dataclasses.asdict(cfg)


def parse_override(text: str) -> tuple[str, Any]:
    """'lam.steps=500' -> ('lam.steps', 500); the value is parsed as YAML ("[64, 64]", "null", "true")."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set lam.steps=500")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw
    return key, value


def apply_override(cls, d: dict, key: str, value) -> tuple[Any, Any]:
    """Set dotted `key` in the nested dict `d` after checking it names a field of `cls`. Returns (old, new)."""
    parts = key.split(".")
    node, tp = d, cls
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"unknown config key '{key}': '{'.'.join(parts[:i])}' is not a section")
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        if part not in names:
            raise _unknown(".".join(parts[: i + 1]), names)
        ftp = _hints(tp)[part]
        if i == len(parts) - 1:
            new = _check_value(ftp, value, key)
            old = node.get(part, _default_of(tp, part))
            node[part] = new
            return old, new
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{'.'.join(parts[: i + 1])}' must be a mapping")
        tp = ftp
    raise AssertionError("unreachable")


def _default_of(cls, name: str):
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        v = f.default_factory()  # type: ignore[misc]
        return to_dict(v) if dataclasses.is_dataclass(v) else v
    return None


def load_config(cls, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()):
    """Load YAML `path` (or defaults) into `cls`, apply `key=value` overrides. Returns (cfg, echo lines)."""
    d: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
        except RecursionError:
            raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        try:
            from_dict(cls, d)  # validate the file alone first, so errors name the file and its keys
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    echo = []
    for text in overrides:
        try:
            key, value = parse_override(text)
            old, new = apply_override(cls, d, key, value)
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("--set") else f"--set {text}: {msg}") from None
        echo.append(f"override {key}: {old!r} -> {new!r}")
    try:
        return from_dict(cls, d), echo
    except ConfigError as e:  # a combination of the file and the overrides (each was valid on its own)
        raise ConfigError(f"{path or 'defaults'} with --set {' '.join(overrides)}: {e}") from None


def save_config(cfg, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    write_text_atomic(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None))
