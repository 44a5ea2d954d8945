"""Content hashes for the trainer's files (policy.pt, checkpoint.pt): a flipped byte is an error, not a
silently different policy.

    blob = seal(blob)                         # adds blob["sha256"] over everything else in it
    torch.save(blob, path)
    verify(torch.load(path, weights_only=True), path, hint="re-run clam-train")   # UserError on a mismatch

The hash is over the loaded content, not the file's bytes: sha256 of a canonical encoding of the dict
(keys sorted, every tensor's dtype, shape and raw bytes, numbers and strings typed), so it holds across
torch.save's zip layout and map_location. A damaged zip structure already fails in torch.load; a byte
flipped inside a tensor's data used to load silently.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from clamkit.errors import UserError

log = logging.getLogger(__name__)

KEY = "sha256"


def _feed(h, x) -> None:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(x.shape)}".encode())
        h.update(memoryview(t.view(torch.uint8).numpy()))
    elif isinstance(x, np.ndarray):
        h.update(f"A{x.dtype.str}{x.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(x).reshape(-1).view(np.uint8)))
    elif isinstance(x, dict):
        h.update(b"D%d" % len(x))
        for k in sorted(x, key=repr):
            _feed(h, k)
            _feed(h, x[k])
    elif isinstance(x, (list, tuple)):
        h.update(b"%s%d" % (b"L" if isinstance(x, list) else b"U", len(x)))
        for v in x:
            _feed(h, v)
    elif isinstance(x, str):
        b = x.encode()
        h.update(b"S%d:" % len(b) + b)
    elif isinstance(x, (bytes, bytearray)):
        h.update(b"B%d:" % len(x) + bytes(x))
    elif x is None or isinstance(x, (bool, np.bool_)):
        h.update(b"N" if x is None else (b"b1" if x else b"b0"))
    elif isinstance(x, (int, np.integer)):
        h.update(b"I%d;" % int(x))
    elif isinstance(x, (float, np.floating)):
        h.update(b"F" + float(x).hex().encode() + b";")
    else:
        raise TypeError(f"cannot hash a {type(x).__name__} (checkpoints hold plain types and tensors)")


def content_sha256(blob: dict) -> str:
    """sha256 of everything in `blob` except its own hash entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in blob.items() if k != KEY})
    return h.hexdigest()


def seal(blob: dict) -> dict:
    """`blob` with blob["sha256"] set to its content hash."""
    return blob | {KEY: content_sha256(blob)}


def verify(blob: dict, path: str | Path, hint: str) -> None:
    """UserError (one line) when blob's content does not match its recorded hash; files from before the hash
    was recorded load (logged at DEBUG)."""
    want = blob.get(KEY)
    if want is None:
        log.debug("%s has no content hash (written by an older clamkit); its contents are not verified", path)
        return
    if content_sha256(blob) != want:
        raise UserError(f"{path}: content hash mismatch (the file is damaged: a flipped or lost byte); {hint}")
