"""What every importer shares: atomic output, PyAV decoding with one-line errors, sizes, progress."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from clamkit.errors import DatasetError, UserError, require

log = logging.getLogger(__name__)

CHUNK = 64  # frames handed to the dataset writer at a time (bounded memory for any video length)


def av():
    """PyAV, or MissingDependency naming the extra."""
    mod = require("av", "import")
    logging.getLogger("libav").setLevel(logging.ERROR)
    return mod


def parse_size(text: str | int | None) -> tuple[int, int] | None:
    """"64" -> (64, 64); "84x96" -> (84, 96) as (height, width); None/"native" -> None (keep the source size)."""
    if text is None or str(text).lower() == "native":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+))?\s*", str(text))
    if not m:
        raise UserError(f"--size {text!r}: expected N (square) or HxW, e.g. 64 or 84x84")
    h, w = int(m.group(1)), int(m.group(2) or m.group(1))
    if not (8 <= h <= 4096 and 8 <= w <= 4096):
        raise UserError(f"--size {text!r}: height and width must be 8..4096")
    return h, w


@contextlib.contextmanager
def atomic_output(out: str | Path) -> Iterator[Path]:
    """Yield a hidden sibling directory to write the whole dataset into; rename it to `out` on success.

    Any error or Ctrl-C removes it, so `out` either is the complete import or does not exist (a
    killed process leaves only the hidden `.NAME.importing-PID`, never a dataset that looks whole).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists; choose a new --out (imports never write into an existing dataset)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # an empty directory the user made for us
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def progress(total: int | None, desc: str, enabled: bool = True, unit: str = "frame"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, leave=False)


def _reason(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    """A PyAV VideoFrame -> (H, W, 3) uint8, area-resized by libswscale when `size` is given."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(width=size[1], height=size[0], format="rgb24", interpolation="AREA")


class VideoFile:
    """One video stream read frame by frame through PyAV: (seconds, frame) pairs, never the whole video.

    Every failure is a DatasetError naming the file: unreadable container, no video stream, a codec
    FFmpeg cannot decode, corrupt or truncated data (fewer frames than the container declares).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        lib = av()
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: missing video file")
        try:
            self.container = lib.open(str(self.path))
        except (lib.error.FFmpegError, OSError, ValueError) as e:
            raise DatasetError(f"{self.path}: not a readable video ({_reason(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise DatasetError(f"{self.path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        ctx = self.stream.codec_context
        if ctx is None or getattr(ctx, "codec", None) is None or not ctx.codec.is_decoder:
            name = getattr(ctx, "name", None)
            self.container.close()
            raise DatasetError(f"{self.path}: unsupported codec{f' {name!r}' if name else ''} (the FFmpeg in PyAV has no "
                               "decoder for this video stream; re-encode it, e.g. to H.264)")
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.fps = float(rate) if rate else None
        self.declared_frames = int(self.stream.frames or 0)  # 0: the container does not say
        self.codec = self.stream.codec_context.name
        self.decoded = 0  # frames decoded so far (to compare with declared_frames at the end)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "VideoFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def seek(self, seconds: float) -> None:
        """Position the decoder at the keyframe at or before `seconds` (frames before it are skipped by the caller)."""
        lib = av()
        tb = self.stream.time_base
        try:
            self.container.seek(max(int(seconds / tb), 0), stream=self.stream, backward=True, any_frame=False)
        except lib.error.FFmpegError as e:
            raise DatasetError(f"{self.path}: cannot seek to {seconds:.3f} s ({_reason(e)})") from None

    def frames(self, size: tuple[int, int] | None) -> Iterator[tuple[float, np.ndarray]]:
        """(time in seconds, (H, W, 3) uint8) for each decoded frame, in presentation order."""
        lib = av()
        try:
            for frame in self.container.decode(self.stream):
                t = frame.time if frame.time is not None else self.decoded / (self.fps or 1.0)
                self.decoded += 1
                yield float(t), to_rgb(frame, size)
        except lib.error.FFmpegError as e:
            raise DatasetError(f"{self.path}: corrupt or truncated video after {self.decoded} frames ({_reason(e)})") from None


def decode_image(data: bytes | str | Path, size: tuple[int, int] | None, what: str) -> np.ndarray:
    """One encoded image (PNG, JPEG, ... as bytes or a file) -> (H, W, 3) uint8, through PyAV."""
    lib = av()
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else str(data)
    try:
        with lib.open(src) as c:
            frame = next(c.decode(video=0))
            return to_rgb(frame, size)
    except (lib.error.FFmpegError, StopIteration, OSError, ValueError, IndexError) as e:
        raise DatasetError(f"{what}: not a decodable image ({_reason(e) if not isinstance(e, StopIteration) else 'no frame'})") from None


def resample(frames: Iterator[tuple[float, np.ndarray]], fps: float) -> Iterator[np.ndarray]:
    """Frames at exactly `fps` from timestamped ones: for each tick k/fps (from the first frame's time)
    the nearest source frame (frames are dropped or repeated); works for variable frame rates."""
    k, t0, prev, t_prev, dt = 0, None, None, None, 1.0 / fps
    for t, img in frames:
        if t0 is None:
            t0, prev, t_prev = t, img, t
            continue
        if t <= t_prev:
            continue  # a repeated or out-of-order timestamp: keep the first
        while t0 + k / fps <= (t_prev + t) / 2:
            yield prev
            k += 1
        dt, prev, t_prev = t - t_prev, img, t
    if prev is not None:
        while t0 + k / fps < t_prev + dt / 2 or k == 0:
            yield prev
            k += 1


def check_constant_rate(frames: Iterator[tuple[float, np.ndarray]], fps: float, path: Path) -> Iterator[np.ndarray]:
    """Pass frames through, raising DatasetError at the first interval more than a quarter frame off 1/fps."""
    t_prev = None
    for i, (t, img) in enumerate(frames):
        if t_prev is not None and abs((t - t_prev) - 1.0 / fps) > 0.25 / fps:
            raise DatasetError(f"{path}: variable frame rate (frame {i} comes {1000 * (t - t_prev):.1f} ms after the previous, "
                               f"{1000 / fps:.1f} ms expected at {fps:g} fps); pass --fps to resample")
        t_prev = t
        yield img


def chunked(frames: Iterator[np.ndarray], n: int = CHUNK) -> Iterator[np.ndarray]:
    """Stack consecutive frames into (<= n, H, W, 3) arrays."""
    buf = []
    for f in frames:
        buf.append(f)
        if len(buf) == n:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)
