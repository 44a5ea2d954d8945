"""A folder of videos (or of numbered-image folders) -> an unlabelled clamkit dataset.

    FOLDER/a.mp4, b.webm, c.avi, ...     each video file is one episode
    FOLDER/take1/000.png, 001.png, ...   each folder of numbered images is one episode (--fps required)
    FOLDER/000.png, 001.png, ...         or FOLDER itself is one

Observation key "image" (H, W, 3) uint8 at --size; no actions (the unlabelled set of clam-train).
Without --fps every video must have one constant frame rate, the same for all; with --fps each is
resampled by timestamp to that rate (nearest frame), which also handles variable-rate phone videos.
"""

from __future__ import annotations

import re
from pathlib import Path

from clamkit.dataset import DatasetWriter
from clamkit.errors import DatasetError, UserError
from clamkit.importers.common import (VideoFile, atomic_output, check_constant_rate, chunked, decode_image, progress,
                                      resample)
from clamkit.specs import ArraySpec, ObservationSpec

VIDEO_EXT = {".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _images(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXT]


def numbered_images(folder: Path) -> list[Path]:
    """The images of a folder in frame order; their names must carry consecutive frame numbers."""
    numbered = []
    for p in _images(folder):
        m = re.search(r"(\d+)(?!.*\d)", p.stem)
        if not m:
            raise DatasetError(f"{p}: image name has no frame number (expected e.g. 000012.png)")
        numbered.append((int(m.group(1)), p))
    numbered.sort()
    nums = [n for n, _ in numbered]
    for a, b in zip(nums, nums[1:]):
        if b == a:
            raise DatasetError(f"{folder}: two images carry frame number {a}")
        if b != a + 1:
            raise DatasetError(f"{folder}: frame {a + 1} is missing (images jump from {a} to {b})")
    return [p for _, p in numbered]


def find_episodes(folder: Path) -> list[Path]:
    """Video files and image folders directly under `folder`, sorted by name (or `folder` itself)."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXT)
    image_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and _images(p))
    if not videos and not image_dirs and _images(folder):
        return [folder]
    if not videos and not image_dirs:
        raise DatasetError(f"{folder}: no video files ({', '.join(sorted(VIDEO_EXT))}) or numbered-image folders")
    return sorted(videos + image_dirs, key=lambda p: p.name)


def _episode_frames(src: Path, fps: float | None, size, first_fps: list):
    """Frames of one source at the dataset's rate, streamed. first_fps holds the rate the dataset takes."""
    if src.is_dir():
        files = numbered_images(src)
        if fps is None:
            raise UserError(f"{src}: a folder of images has no timing; pass --fps")
        return len(files), (decode_image(f, size, str(f)) for f in files), None
    video = VideoFile(src)
    native = video.fps
    if fps is not None:
        frames = resample(video.frames(size), fps)
    else:
        if not native:
            raise DatasetError(f"{src}: the container gives no frame rate; pass --fps")
        if not first_fps:
            first_fps.append(native)
        elif abs(native - first_fps[0]) > 1e-3 * first_fps[0]:
            raise DatasetError(f"{src}: {native:g} fps, the first video is {first_fps[0]:g} fps; pass --fps to resample all to one rate")
        frames = check_constant_rate(video.frames(size), native, src)
    total = round(video.declared_frames * (fps / native)) if (video.declared_frames and native and fps) else video.declared_frames or None
    return total, frames, video


def _rate(sources: list[Path], fps: float | None) -> float:
    if fps is not None:
        return float(fps)
    first = next((s for s in sources if not s.is_dir()), None)
    if first is None:
        raise UserError(f"{sources[0]}: folders of images have no timing; pass --fps")
    with VideoFile(first) as v:
        if not v.fps:
            raise DatasetError(f"{first}: the container gives no frame rate; pass --fps")
        return v.fps


def import_videos(folder: str | Path, out: str | Path, *, size: tuple[int, int] = (64, 64), fps: float | None = None,
                  show_progress: bool = True) -> dict:
    """Import every video / image folder under `folder` as one unlabelled episode each. Returns a summary."""
    folder = Path(folder)
    if fps is not None and not fps > 0:
        raise UserError(f"--fps must be > 0, got {fps}")
    sources = find_episodes(folder)
    rate = _rate(sources, fps)
    first_fps: list = [] if fps is not None else [rate]
    frames_total = 0
    with atomic_output(out) as tmp:
        spec = ObservationSpec({"image": ArraySpec((*size, 3), "uint8")})
        info = {"importer": "videos", "source": str(folder.resolve()), "resampled_to_fps": fps}
        writer = DatasetWriter(tmp, observation=spec, action=None, fps=rate, robot="video", task="", info=info)
        for src in sources:
            total, frames, video = _episode_frames(src, fps, size, first_fps)
            try:
                with writer.begin_episode() as ep, progress(total, src.name, show_progress) as bar:
                    for chunk in chunked(frames):
                        ep.add_observations({"image": chunk})
                        bar.update(len(chunk))
                    n = ep.length
                    if video is not None and video.declared_frames and video.decoded != video.declared_frames:
                        raise DatasetError(f"{src}: the container declares {video.declared_frames} frames but "
                                           f"{video.decoded} decode (truncated or corrupt)")
                    if n < 2:
                        raise DatasetError(f"{src}: {n} frame(s); an episode needs at least 2")
                    ep.commit(source=src.name, source_fps=video.fps if video else None)
            finally:
                if video is not None:
                    video.close()
            frames_total += n
    return {"out": str(out), "episodes": len(sources), "frames": frames_total, "fps": rate, "size": list(size)}
