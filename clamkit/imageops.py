"""numpy image operations, the one definition of each (camera drivers, the control loop and the
exporter's parity check all import them from here). numpy only.

    center_crop(img, 64, 64)        the largest centred window with that aspect ratio (a view)
    resize_area(img, 64, 64)        area-average resize of an (h, w, C) uint8 image, rounded to uint8
    resize_nearest(depth, 64, 64)   nearest-neighbour resize (depth: never mixes surfaces)

The exported raw-frame graph (export/frame.py) reproduces center_crop + resize_area in integer
arithmetic and is checked against these functions at export.
"""

from __future__ import annotations

import functools

import numpy as np


def center_crop(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """The largest centred window of `img` with the aspect ratio width:height."""
    h, w = img.shape[:2]
    if w * height > h * width:  # too wide: trim the sides
        cw = max(1, round(h * width / height))
        x0 = (w - cw) // 2
        return img[:, x0:x0 + cw]
    ch = max(1, round(w * height / width))
    y0 = (h - ch) // 2
    return img[y0:y0 + ch]


@functools.lru_cache(maxsize=16)
def _area_weights(n_in: int, n_out: int) -> tuple[int, np.ndarray]:
    """(p, W) for an exact area resize along one axis: n_in / n_out = p / q in lowest terms, so the pattern
    repeats every p input pixels, and W (q, p) float32 holds q x (overlap of output i with input j) within a
    group: integers, each row summing to p (box filter; exact area averaging)."""
    g = np.gcd(n_in, n_out)
    p, q = n_in // g, n_out // g
    i, j = np.arange(q)[:, None], np.arange(p)[None, :]  # in units of 1/(p q) of a group: output i spans
    overlap = np.minimum((i + 1) * p, (j + 1) * q) - np.maximum(i * p, j * q)  # [ip, (i+1)p), input j [jq, (j+1)q)
    return p, np.clip(overlap, 0, None).astype(np.float32)


def resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average resize of an (h, w, C) uint8 image to (height, width, C) uint8, rounded half up. The aspect
    ratio is not kept (crop first with center_crop to keep it); an image already at that size is copied.

    Integer arithmetic in float32 (exact while 255 x p_rows x p_cols < 2^24), one small matmul per axis over
    groups of p pixels: ~1 ms for 480x480 -> 64x64, and bit-identical to the in-graph resize of
    export/frame.py, which does the same sums."""
    h, w, C = img.shape
    if (h, w) == (height, width):
        return np.array(img, copy=True)
    (pr, Wr), (pc, Wc) = _area_weights(h, height), _area_weights(w, width)
    x = img.astype(np.float32).reshape(h // pr, pr, w * C)  # (Gr, pr, w C)
    x = np.matmul(Wr, x).reshape(height, w // pc, pc, C)  # (Gr, qr, w C) -> (H, Gc, pc, C)
    s = np.matmul(Wc, x).reshape(height, width, C)  # (H, Gc, qc, C) -> (H, W, C): sums over pr x pc weight
    area = float(pr * pc)
    return np.floor((2 * s + area) / (2 * area)).astype(np.uint8)


def camera_view(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """What a camera hands out at (height, width): the largest centred window of that aspect ratio, area-resized
    (uint8). The sim camera, export's frame parity and the benchmarks use this one definition."""
    return resize_area(center_crop(img, height, width), height, width)


def resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize (for depth: never mixes a surface with the background or a hole)."""
    h, w = img.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
    return img[rows[:, None], cols[None, :]]
