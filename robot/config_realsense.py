"""Configuration of the Intel RealSense camera (clamkit.robot.realsense), validated when it is built.

    RealSenseConfig(serial="123456789012", width=64, height=64)          a live camera
    RealSenseConfig(recording="runs/cam.bag", width=64, height=64)       a recording, played back frame by frame
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECORDING_SUFFIXES = (".bag", ".db3")


@dataclass
class RealSenseConfig:
    """What to open, what to stream, and what to hand out."""

    serial: str | None = None
    """Serial number of the camera to open; None = the first one found (printed on a sticker and by
    `rs-enumerate-devices`)."""
    recording: str | None = None
    """Play back this .bag/.db3 recording instead of a live camera (frame-exact, not real time)."""
    width: int = 64
    """Width of the frames read() returns (the policy's input size)."""
    height: int = 64
    """Height of the frames read() returns."""
    capture_width: int = 640
    """Colour (and depth) stream width on the camera: 640x480 is a mode every D400 has for both streams."""
    capture_height: int = 480
    """Colour (and depth) stream height on the camera."""
    fps: int = 30
    """Camera frame rate. The control loop runs at 5 Hz; 30 fps keeps the newest frame <= 33 ms old."""
    depth: bool = False
    """Also stream depth, aligned to the colour image (Frame.depth, metres, float32)."""
    crop: bool = True
    """Centre-crop each frame to the output aspect ratio before resizing (False: squash, like a plain resize)."""
    warmup_frames: int | None = None
    """Frames discarded after the stream starts while auto-exposure settles. None = 30 (1 s at 30 fps)
    for a live camera, 0 for a recording (every recorded frame is handed out)."""
    timeout_ms: int = 1000
    """How long to wait for one frame before treating the USB link as dropped (~30 frame periods)."""
    first_frame_timeout_ms: int = 5000
    """How long to wait for the first frame after the stream (re)starts: a D400 takes far longer to start its
    sensors than to deliver the next frame (a second or more), and timeout_ms would count that as a drop."""
    max_reconnects: int = 5
    """Reconnection attempts after a dropped link before read() raises CameraFault."""
    reconnect_backoff: float = 0.5
    """Seconds before the first reconnection attempt, doubled after each (the camera re-enumerates in ~1-3 s)."""
    reconnect_backoff_max: float = 4.0
    """Upper bound on the wait between reconnection attempts."""

    def __post_init__(self):
        if self.serial is not None:
            self.serial = str(self.serial).strip()
            if not self.serial:
                self.serial = None
        if self.serial and self.recording:
            raise ValueError("give either serial (a live camera) or recording (a file), not both")
        if self.recording is not None:
            self.recording = str(self.recording)
            if Path(self.recording).suffix.lower() not in RECORDING_SUFFIXES:
                raise ValueError(f"recording must be a {' or '.join(RECORDING_SUFFIXES)} file, got '{self.recording}'")
        for name in ("width", "height", "capture_width", "capture_height", "fps", "timeout_ms", "first_frame_timeout_ms"):
            value = getattr(self, name)
            if int(value) != value or int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))
        if self.warmup_frames is None:
            self.warmup_frames = 0 if self.recording else 30
        if int(self.warmup_frames) < 0 or int(self.max_reconnects) < 0:
            raise ValueError("warmup_frames and max_reconnects must be >= 0")
        if not (self.reconnect_backoff >= 0 and self.reconnect_backoff_max >= self.reconnect_backoff):
            raise ValueError("need 0 <= reconnect_backoff <= reconnect_backoff_max")
