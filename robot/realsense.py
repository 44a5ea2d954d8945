"""Intel RealSense colour (+ aligned depth) camera, live or played back from a recording.

    with RealSenseCamera(serial="123456789012", width=64, height=64) as cam:   # live
        frame = cam.async_read()          # newest frame, no waiting (a background thread keeps reading)
    with RealSenseCamera(recording="cam.bag", width=64, height=64) as cam:     # playback, frame-exact
        while True:
            frame = cam.read()            # raises EndOfStream (an EOFError) after the last frame

Frames are RGB uint8 (height, width, 3): centre-cropped to the output aspect ratio, then area-resized
with numpy (clamkit.imageops; no OpenCV on the robot computer). Frame.timestamp is on time.monotonic()'s clock so the
runtime can measure camera-to-action age; Frame.depth (optional) is metres, float32, aligned to colour.

pyrealsense2 facts this relies on (measured with 2.59 here, on recordings made with rs.software_device
+ rs.recorder, see tests/robot/test_realsense.py):
- rs.recorder in 2.59 writes .db3 (rosbag2) only; playback reads .db3 and the older .bag.
- Playback through rs.pipeline (config.enable_device_from_file) is NOT frame-exact, even with
  playback.set_real_time(False): it dropped the first 1-11 frames and, with a fast reader, frames
  mid-stream. So recordings are read sensor by sensor instead: load the device paused, start each
  sensor with a callback that blocks on a small queue (back-pressure: non-real-time playback waits),
  then resume. That delivered 100/100 colour and depth frames in repeated runs.
- Colour and depth of one moment are paired by timestamp and aligned with rs.align after composing
  them into a frameset with a processing_block (allocate_composite_frame).
- End of a recording (no repeat): playback.current_status() == stopped and the queues drained.
- Live D400 frames carry global_time timestamps (host clock, ms); hardware_clock ones are mapped to
  the host clock with a running minimum of (arrival - device time).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clamkit.errors import UserError, require
from clamkit.imageops import center_crop, resize_area, resize_nearest
from clamkit.robot.base import Camera, DeviceNotConnectedError, Frame
from clamkit.robot.config_realsense import RealSenseConfig
from clamkit.specs import ArraySpec

log = logging.getLogger(__name__)


class EndOfStream(EOFError):
    """The recording has no more frames (playback only). An EOFError, so loops can stop cleanly."""


class CameraFault(ConnectionError):
    """The camera stopped delivering frames and did not come back after the configured reconnects."""


def _rs():
    return require("pyrealsense2", "realsense",
                   hint="pip install 'clamkit[realsense]' (on Linux it also needs libusb-1.0-0: apt-get install libusb-1.0-0)")


# ----------------------------------------------------------------------------- recordings


class _Player:
    """Frame-exact reader of a .bag/.db3 recording (see the module docstring for why not rs.pipeline)."""

    QUEUE = 8  # frames buffered per stream; the playback waits while a queue is full

    def __init__(self, rs, path: str, depth: bool):
        self.rs, self.path = rs, path
        self.closing = False
        # resume() waits for the playback thread, which waits for our callbacks: they must not block
        # until it has returned (measured: a callback waiting on a full queue made resume() hang 10 s).
        self._bounded = False
        self._cond = threading.Condition()
        try:
            self.context = rs.context()  # keep it: the playback device lives in this context
            self.device = self.context.load_device(path)
        except RuntimeError as e:
            raise UserError(f"recording {path} cannot be opened: {e}") from None
        self.playback = self.device.as_playback()
        self.playback.set_real_time(False)
        self.playback.pause()  # nothing flows until every sensor has its callback
        wanted = [rs.stream.color] + ([rs.stream.depth] if depth else [])
        self.queues = {kind: collections.deque() for kind in wanted}
        self.sensors, found = [], {}
        for sensor in self.device.query_sensors():
            profiles = [p for p in sensor.get_stream_profiles() if p.stream_type() in wanted and p.stream_type() not in found]
            if profiles:
                for prof in profiles:
                    found[prof.stream_type()] = prof
                sensor.open(profiles)
                self.sensors.append(sensor)
        missing = [str(k).split(".")[-1] for k in wanted if k not in found]
        if missing:
            self.close()
            raise UserError(f"recording {path} cannot stream colour{' + depth' if depth else ''}: it has no "
                            f"{' or '.join(missing)} stream")
        self.color_format = str(found[rs.stream.color].format()).split(".")[-1]
        for sensor in self.sensors:
            sensor.start(self._on_frame)
        self.playback.resume()
        with self._cond:
            self._bounded = True
        self._pair: dict = {}
        self._composer = self._composed = self._align = None
        if depth:
            self._composed = rs.frame_queue(2)
            self._composer = rs.processing_block(self._compose)
            self._composer.start(self._composed)
            self._align = rs.align(rs.stream.color)
        self._depth_prev = self._depth_next = None

    def _on_frame(self, frame) -> None:
        """Sensor callback (librealsense thread): keep the frame and queue it; wait while the queue is full,
        which holds the non-real-time playback back (it waits for its callbacks)."""
        frame.keep()
        q = self.queues.get(frame.get_profile().stream_type())
        if q is None:
            return
        with self._cond:
            self._cond.wait_for(lambda: self.closing or not self._bounded or len(q) < self.QUEUE)
            if not self.closing:
                q.append(frame)
                self._cond.notify_all()

    def _compose(self, frame, source) -> None:
        source.frame_ready(source.allocate_composite_frame([self._pair["depth"], self._pair["color"]]))

    def _get(self, kind, timeout_ms: int, *, end_ok: bool = True):
        """The next frame of one stream; None at the end of the recording (EndOfStream for colour)."""
        q, start, stopped_at = self.queues[kind], time.monotonic(), None
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: len(q) > 0, timeout=0.05):
                    frame = q.popleft()
                    self._cond.notify_all()  # a callback may be waiting for room
                    return frame
            now = time.monotonic()
            if self.playback.current_status() == self.rs.playback_status.stopped:
                stopped_at = stopped_at or now
                if now - stopped_at >= 0.2:  # stopped and nothing more came for 0.2 s: the end
                    if end_ok:
                        return None
                    raise EndOfStream(f"end of recording {self.path}")
            elif now - start >= timeout_ms / 1e3 * 10:
                raise CameraFault(f"recording {self.path}: no frame for {now - start:.1f} s")

    def next(self, timeout_ms: int):
        """(colour frame, aligned depth frame or None) of the next recorded moment."""
        color = self._get(self.rs.stream.color, timeout_ms, end_ok=False)
        if self.rs.stream.depth not in self.queues:
            return color, None
        # The depth frame closest in time: consume depth frames up to the colour frame's time (+ one ahead).
        t = color.get_timestamp()
        while True:
            if self._depth_next is None:
                self._depth_next = self._get(self.rs.stream.depth, timeout_ms)
            nxt = self._depth_next
            if nxt is not None and nxt.get_timestamp() <= t:
                self._depth_prev, self._depth_next = nxt, None
                continue
            break
        cands = [d for d in (self._depth_prev, self._depth_next) if d is not None]
        if not cands:
            return color, None
        depth = min(cands, key=lambda d: abs(d.get_timestamp() - t))
        self._pair["color"], self._pair["depth"] = color, depth
        self._composer.invoke(depth)
        frames = self._align.process(self._composed.wait_for_frame(1000).as_frameset())
        return frames.get_color_frame(), frames.get_depth_frame()

    def close(self) -> None:
        with self._cond:  # release callbacks waiting for room, and drop the queued frames
            self.closing = True
            for q in self.queues.values():
                q.clear()
            self._cond.notify_all()
        # Drop every frame we still hold (kept frames pin librealsense's buffers; the composer's
        # callback is a reference cycle that only the garbage collector would break).
        self._depth_prev = self._depth_next = None
        self._pair = {}
        self._composer = self._composed = self._align = None
        for sensor in self.sensors:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError as e:
                log.debug("closing a playback sensor: %s", e)
        self.sensors = []
        try:
            self.context.unload_device(self.path)
        except (AttributeError, RuntimeError) as e:
            log.debug("unloading %s: %s", self.path, e)


# ----------------------------------------------------------------------------- the camera


@dataclass
class _Raw:
    """One frame as it came off the camera (copied out of librealsense's buffers)."""

    color: np.ndarray          # (h, w, 3) uint8 RGB
    depth: np.ndarray | None   # (h, w) float32 metres, aligned to colour
    timestamp: float           # time.monotonic() clock
    index: int                 # colour frame number


_CHANNELS = {"rgb8": (slice(None), 3), "bgr8": (slice(None, None, -1), 3),
             "rgba8": (slice(0, 3), 4), "bgra8": (slice(2, None, -1), 4)}


class RealSenseCamera(Camera):
    """A RealSense colour camera (optionally with depth aligned to colour), or a recording of one.

    read() blocks for the next frame. async_read() (live) returns the newest frame without waiting,
    from a background thread that keeps draining the camera; on a recording it is read(), so playback
    stays frame-exact. A dropped USB link is retried (bounded, with backoff) and then raises CameraFault.
    The first frame after a (re)start may take first_frame_timeout_ms; frames lost on the way are counted
    (frames_dropped, from gaps in the frame numbers) and the newest frame is handed out.
    """

    def __init__(self, config: RealSenseConfig | None = None, **overrides):
        if config is not None and overrides:
            raise TypeError("pass either a RealSenseConfig or keyword overrides, not both")
        try:
            self.config = config or RealSenseConfig(**overrides)
        except (TypeError, ValueError) as e:
            raise UserError(f"realsense config: {e}") from None
        self.name = "recording" if self.config.recording else "realsense"
        self._pipeline = self._align = self._player = None
        self._serial: str | None = self.config.serial
        self._hw_offset: float | None = None
        self.end_of_stream = False
        self.frames_read = self.reconnects = 0
        self.frames_dropped = 0  # live: gaps in the colour frame numbers (frames the host never got)
        self._last_index: int | None = None
        self._first_frame = False  # the stream just (re)started: allow first_frame_timeout_ms
        self._dead_restarts = 0  # reconnects that brought no frame (a camera that starts but never streams)
        # Background reader (live async_read).
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: _Raw | None = None
        self._latest_seq = self._returned_seq = 0
        self._thread_error: BaseException | None = None
        self._processed: tuple[int, Frame] | None = None

    # ------------------------------------------------------------------ interface

    @property
    def spec(self) -> ArraySpec:
        return ArraySpec((self.config.height, self.config.width, 3), "uint8")

    @property
    def is_connected(self) -> bool:
        return self._pipeline is not None or self._player is not None

    @property
    def serial(self) -> str | None:
        """The serial of the open camera (or the configured one)."""
        return self._serial

    def connect(self) -> None:
        """Open the camera (or the recording) and discard the warm-up frames."""
        if self.is_connected:
            return
        rs = _rs()
        cfg = self.config
        if cfg.recording:
            if not Path(cfg.recording).is_file():
                raise UserError(f"recording not found: {cfg.recording}")
            self._player = _Player(rs, cfg.recording, cfg.depth)
            if self._player.color_format not in _CHANNELS:
                self._stop_pipeline()
                raise UserError(f"recording {cfg.recording}: colour format {self._player.color_format} is not "
                                f"supported ({', '.join(_CHANNELS)})")
            self.end_of_stream = False
        else:
            self._serial = self._find_device(rs)
            self._start(rs)
        for _ in range(cfg.warmup_frames):
            self._grab()
        log.info("%s %s: %s%s -> %dx%d%s", self.name, cfg.recording or self._serial,
                 "recorded streams" if cfg.recording else f"{cfg.capture_width}x{cfg.capture_height}@{cfg.fps}",
                 " + depth" if cfg.depth else "", cfg.width, cfg.height, " (centre crop)" if cfg.crop else "")

    def read(self) -> Frame:
        """The next frame (blocking)."""
        self._require()
        if self._thread is not None:
            raw, seq = self._wait_latest(newer_than=self._returned_seq)
            self._returned_seq = seq
            return self._process(raw, seq)
        raw = self._grab()
        self._latest_seq += 1
        return self._process(raw, self._latest_seq)

    def async_read(self) -> Frame:
        """Live: the newest frame without waiting (the first call starts the reader thread and waits
        for one frame). Recording: the next frame, exactly like read()."""
        self._require()
        if self.config.recording:
            return self.read()
        if self._thread is None:
            self._start_thread()
        raw, seq = self._wait_latest(newer_than=0)
        self._returned_seq = seq
        return self._process(raw, seq)

    def disconnect(self) -> None:
        self._stop_thread()
        self._stop_pipeline()
        self._align = None

    # ------------------------------------------------------------------ pipeline

    def _require(self):
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self.name} camera is not connected")

    def _find_device(self, rs) -> str:
        """The serial of the camera to open; UserError (one line) when it is not plugged in."""
        try:
            devices = rs.context().query_devices()
            serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        except RuntimeError as e:
            raise UserError(f"cannot list RealSense devices: {e}") from None
        want = self.config.serial
        if not serials:
            raise UserError(f"no RealSense device found{f' (serial {want})' if want else ''}; "
                            "is it plugged into a USB 3 port?")
        if want is None:
            return serials[0]
        if want not in serials:
            raise UserError(f"no RealSense device found (serial {want}); connected: {', '.join(serials)}")
        return want

    def _start(self, rs) -> None:
        """Start the live pipeline on self._serial."""
        cfg = self.config
        rs_cfg = rs.config()
        rs_cfg.enable_device(self._serial)
        rs_cfg.enable_stream(rs.stream.color, cfg.capture_width, cfg.capture_height, rs.format.rgb8, cfg.fps)
        if cfg.depth:
            rs_cfg.enable_stream(rs.stream.depth, cfg.capture_width, cfg.capture_height, rs.format.z16, cfg.fps)
        pipeline = rs.pipeline()
        try:
            pipeline.start(rs_cfg)
        except RuntimeError as e:
            raise UserError(f"RealSense {self._serial} cannot stream colour{' + depth' if cfg.depth else ''} at "
                            f"{cfg.capture_width}x{cfg.capture_height}@{cfg.fps} fps: {e}") from None
        self._align = rs.align(rs.stream.color) if cfg.depth else None
        self._pipeline, self._hw_offset = pipeline, None
        self._first_frame, self._last_index = True, None  # frame numbers restart with the stream

    def _stop_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        player, self._player = self._player, None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError as e:  # already stopped, or the device vanished
                log.debug("pipeline.stop: %s", e)
        if player is not None:
            player.close()

    def _wait_frames(self, timeout_ms: int):
        """(ok, frameset) from the live pipeline; raises RuntimeError when the device is gone."""
        return self._pipeline.try_wait_for_frames(timeout_ms)

    def _grab(self) -> _Raw:
        """The next frame off the camera, reconnecting (live) or raising EndOfStream (recording)."""
        rs = _rs()
        cfg = self.config
        while True:
            if self._player is not None:
                try:
                    color, depth = self._player.next(cfg.timeout_ms)
                except EndOfStream:
                    self.end_of_stream = True
                    raise EndOfStream(f"end of recording {cfg.recording} after {self.frames_read} frames") from None
                except RuntimeError as e:  # librealsense failed mid-file (align, a truncated recording)
                    raise CameraFault(f"recording {cfg.recording}: {e}") from e
                raw = self._convert(rs, color, depth)
            else:
                if self._pipeline is None:
                    raise DeviceNotConnectedError(f"{self.name} camera is not connected")
                timeout = cfg.first_frame_timeout_ms if self._first_frame else cfg.timeout_ms
                try:
                    ok, frames = self._wait_frames(timeout)
                except RuntimeError as e:  # device unplugged, pipeline broken
                    self._reconnect(rs, e)
                    continue
                if not ok:
                    self._reconnect(rs, RuntimeError(f"no frame for {timeout} ms"))
                    continue
                self._first_frame, self._dead_restarts = False, 0
                raw = self._convert_frameset(rs, frames)
                if raw is not None:
                    self._count_drops(raw.index)
            if raw is not None:
                self.frames_read += 1
                return raw

    def _count_drops(self, index: int) -> None:
        if self._last_index is not None and index > self._last_index + 1:
            self.frames_dropped += index - self._last_index - 1
            log.debug("RealSense %s: %d frame(s) dropped before frame %d", self._serial, index - self._last_index - 1, index)
        self._last_index = index

    def _convert_frameset(self, rs, frames) -> _Raw | None:
        if self._align is not None:
            frames = self._align.process(frames)
            return self._convert(rs, frames.get_color_frame(), frames.get_depth_frame())
        return self._convert(rs, frames.get_color_frame(), None)

    def _convert(self, rs, color, depth) -> _Raw | None:
        """Copy colour (+ aligned depth) out of librealsense's buffers; None when a frame is missing."""
        arrival = time.monotonic()
        if not color or (self.config.depth and not depth):
            return None
        fmt = str(color.get_profile().format()).split(".")[-1]
        sel, n = _CHANNELS.get(fmt, (None, None))
        if sel is None:
            raise CameraFault(f"{self.name}: colour format {fmt} is not supported")
        img = np.asanyarray(color.get_data())  # (h, w, n) view into librealsense's buffer
        if img.ndim != 3 or img.shape[2] != n:
            raise CameraFault(f"{self.name}: colour frame of shape {img.shape} for format {fmt}")
        # np.array copies: for rgb8 ascontiguousarray would return the view, and a view keeps librealsense's
        # frame (from its small pool) alive as long as the image is, now that capture-size frames skip the resize.
        image = np.array(img[..., sel], order="C")  # (h, w, 3) RGB
        meters = None
        if depth:
            meters = np.asanyarray(depth.get_data()).astype(np.float32) * np.float32(depth.get_units())  # (h, w)
        return _Raw(image, meters, self._to_monotonic(rs, color, arrival), int(color.get_frame_number()))

    def _to_monotonic(self, rs, frame, arrival: float) -> float:
        """The frame's capture time on time.monotonic()'s clock (arrival time for recordings)."""
        if self.config.recording:
            return arrival  # recorded device times mean nothing now; age = time since it was read
        ts = frame.get_timestamp() / 1e3  # s
        domain = frame.get_frame_timestamp_domain()
        if domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time):
            return min(arrival, arrival - (time.time() - ts))  # host wall clock -> monotonic
        # hardware_clock: device time; offset to the host = the smallest (arrival - device time) seen,
        # relaxed by 0.1 ms per frame so the estimate follows clock drift.
        offset = arrival - ts
        self._hw_offset = offset if self._hw_offset is None else min(self._hw_offset + 1e-4, offset)
        return min(arrival, ts + self._hw_offset)

    def _reconnect(self, rs, error: BaseException) -> None:
        """Restart the pipeline after a dropped link: max_reconnects attempts with doubling waits."""
        cfg = self.config
        start = time.monotonic()
        if self._dead_restarts >= cfg.max_reconnects:  # it comes back every time but never streams
            self._stop_pipeline()
            raise CameraFault(f"RealSense {self._serial} restarted {self._dead_restarts} time(s) without delivering "
                              f"a frame: {error}")
        log.warning("RealSense %s stopped delivering (%s); reconnecting", self._serial, error)
        last: BaseException = error
        for attempt in range(1, cfg.max_reconnects + 1):
            if self._stop.is_set():  # disconnect() asked the reader thread to stop
                break
            self._stop_pipeline()
            time.sleep(min(cfg.reconnect_backoff * 2 ** (attempt - 1), cfg.reconnect_backoff_max))
            try:
                self._find_device(rs)
                self._start(rs)
            except (UserError, RuntimeError) as e:
                last = e
                log.warning("reconnect %d/%d failed: %s", attempt, cfg.max_reconnects, e)
                continue
            self.reconnects += 1
            self._dead_restarts += 1
            log.warning("RealSense %s back after %.1f s (reconnect %d)", self._serial, time.monotonic() - start, attempt)
            return
        self._stop_pipeline()
        raise CameraFault(f"RealSense {self._serial} lost and not back after {cfg.max_reconnects} reconnect(s) "
                          f"in {time.monotonic() - start:.1f} s: {last}")

    # ------------------------------------------------------------------ output

    def _process(self, raw: _Raw, seq: int) -> Frame:
        """Crop + resize to the output spec (done for handed-out frames only, not every camera frame)."""
        if self._processed is not None and self._processed[0] == seq:
            return self._processed[1]
        cfg = self.config
        image, depth = raw.color, raw.depth
        if cfg.crop:
            image = center_crop(image, cfg.height, cfg.width)
            depth = center_crop(depth, cfg.height, cfg.width) if depth is not None else None
        if image.shape[:2] != (cfg.height, cfg.width):  # a raw-frame bundle takes the capture size: no per-pixel work
            image = resize_area(image, cfg.height, cfg.width)  # (H, W, 3) uint8
        if depth is not None:
            depth = np.ascontiguousarray(resize_nearest(depth, cfg.height, cfg.width))  # (H, W) float32
        frame = Frame(image=image, timestamp=raw.timestamp, index=raw.index, depth=depth)
        self._processed = (seq, frame)
        return frame

    # ------------------------------------------------------------------ background reader

    def _start_thread(self) -> None:
        self._stop.clear()
        self._thread_error = None
        self._thread = threading.Thread(target=self._reader, name=f"realsense-{self._serial}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self._grab()
            except BaseException as e:  # noqa: BLE001 - handed to the reader of async_read()/read()
                if not self._stop.is_set():
                    with self._cond:
                        self._thread_error = e
                        self._cond.notify_all()
                return
            with self._cond:
                self._latest, self._latest_seq = raw, self._latest_seq + 1
                self._cond.notify_all()

    def _wait_latest(self, newer_than: int) -> tuple[_Raw, int]:
        cfg = self.config
        limit = cfg.timeout_ms / 1e3 * 2 + cfg.max_reconnects * (cfg.reconnect_backoff_max + cfg.first_frame_timeout_ms / 1e3)
        with self._cond:
            ok = self._cond.wait_for(lambda: self._thread_error is not None or
                                     (self._latest is not None and self._latest_seq > newer_than), timeout=limit)
            if self._thread_error is not None:
                raise self._thread_error
            if not ok:
                raise CameraFault(f"{self.name} {self._serial}: no frame for {limit:.1f} s")
            return self._latest, self._latest_seq

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=self.config.timeout_ms / 1e3 + 1.0)
            if thread.is_alive():
                log.warning("RealSense reader thread did not stop in time")
        self._latest, self._thread_error = None, None
