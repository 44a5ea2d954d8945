"""File I/O every stage shares: crash-safe writes and JSON.

One rule for every file clamkit writes over an older one (a dataset's meta.json, a bundle's clam.json,
config.yaml, policy.pt, checkpoint.pt, TensorRT engines and timing caches, summaries and reports):
write a temp file in the same directory, fsync it once, give it the permissions a plain open() gives
(0o666 minus the umask: mkstemp makes 0600, and datasets, runs and bundles are meant to be shared and
copied to the robot), then os.replace it over the target. A crash leaves the old file or the new one,
never half of one; on any failure the temp file is removed and the target is untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from clamkit.errors import DatasetError, UserError


def file_mode() -> int:
    """The permissions of a new file under the current umask (what open() would give it)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call write(f) on a temp file next to `path`, fsync, set file_mode(), rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data) -> Path:
    """Bytes (or anything with the buffer protocol) to `path`, atomically."""
    return write_atomic(path, lambda f: f.write(memoryview(data)))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """UTF-8 text to `path`, atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj) -> Path:
    """JSON (indent 1) to `path`, atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=1))


def read_json(path: str | Path, error: type[UserError] = DatasetError):
    """Parse a JSON file; any read or parse failure is `error` naming the file (one line)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise error(f"{path}: not valid JSON (nested too deeply)") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
