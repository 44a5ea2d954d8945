"""A RealSense D435 made of pyrealsense2's own software_device, filming the emulated world.

    cam = EmulatedRealSense(world)             # serial "000000000042", 640x480 rgb8 + z16 at 30 fps
    restore = cam.install()                    # pyrealsense2 in sys.modules now finds this camera
    RealSenseCamera(serial="000000000042", depth=True).connect()    # the real backend, unchanged
    cam.drop(5); cam.unplug(1.5); cam.startup_delay = 2.0           # faults
    restore()

Frames are rendered from the scene camera (widowx_scene.xml "cam", a D435's 42 deg vertical FOV) by a
feeder thread at the stream rate and handed to the software sensors with global_time timestamps, as a
live D400 delivers them; the sensors stream into a real rs.syncer and rs.align aligns depth to colour.

What is emulated in Python, and why: pyrealsense2 2.59 does not list a software_device in a context
(software_device.add_to(context) leaves query_devices() empty, measured), so rs.pipeline cannot find
it. The installed module is the real pyrealsense2 with three classes replaced -- context (lists the
emulated camera while it is plugged in), config (records enable_device / enable_stream) and pipeline
(resolves the requested streams against the software sensors' real stream profiles -- "Couldn't
resolve requests" otherwise -- opens and starts them into a real rs.syncer). Frames, framesets,
rs.align, formats and timestamps are librealsense's own.

Warm-up: a started camera delivers its first frame after `startup_delay` s, and its first
`exposure_frames` frames are dark, brightening as auto-exposure settles (what the backend's
warmup_frames discard). Faults: drop(n) loses the next n frames (frame numbers still advance);
unplug(seconds) makes the camera vanish (no frames, not listed) and come back as a new device.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import types

import numpy as np
from clamkit.robot.emulate.world import EmulatedWorld
from clamkit.robot.realsense_recording import software_camera

from clamkit.errors import require

log = logging.getLogger(__name__)

SERIAL = "000000000042"
# D435 colour intrinsics at 640x480 with the scene camera's 42 deg vertical field of view.
FOVY = 42.0


class EmulatedRealSense:
    """The camera: device, streams, feeder thread and faults. See the module docstring."""

    def __init__(self, world: EmulatedWorld, serial: str = SERIAL, width: int = 640, height: int = 480, fps: int = 30,
                 startup_delay: float = 0.3, exposure_frames: int = 10):
        self.world, self.serial = world, str(serial)
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.startup_delay, self.exposure_frames = float(startup_delay), int(exposure_frames)
        self.rs = require("pyrealsense2", "realsense")
        self.plugged = True
        self.device = None
        self._lock = threading.Lock()
        self._feeder: threading.Thread | None = None
        self._feeding = threading.Event()
        self._drop = 0
        self._unplugged_until: float | None = None
        self.frame_number = 0
        self.frames_sent = self.frames_dropped = 0
        self._new_device()

    # ------------------------------------------------------------------ the device

    def _new_device(self) -> None:
        rs = self.rs
        W, H = self.width, self.height
        f = H / 2 / np.tan(np.radians(FOVY) / 2)  # focal length in pixels

        dev, sensors, profiles = software_camera(rs, width=W, height=H, fps=self.fps, focal=f, serial=self.serial,
                                                 name="Intel RealSense D435 (clamkit emulator)", color_format=rs.format.rgb8,
                                                 depth=True, product_line="D400")
        dev.create_matcher(rs.matchers.default)
        self.device, self.sensors = dev, sensors
        self.frame_number = 0  # a re-enumerated camera numbers its frames from the start
        self.profiles = {k: p.as_video_stream_profile() for k, p in profiles.items()}

    def devices(self) -> list:
        self._check_replug()
        return [self.device] if self.plugged else []

    def _check_replug(self) -> None:
        if not self.plugged and self._unplugged_until is not None and time.monotonic() >= self._unplugged_until:
            self._new_device()  # it re-enumerates as a new device
            self.plugged, self._unplugged_until = True, None
            log.warning("emulator: RealSense %s plugged back in", self.serial)

    # ------------------------------------------------------------------ faults

    def drop(self, n: int) -> None:
        """Lose the next n frames (USB bandwidth, a busy host): their frame numbers are skipped."""
        with self._lock:
            self._drop += int(n)

    def unplug(self, seconds: float | None = None) -> None:
        """The camera vanishes now (no frames, not listed), and comes back after `seconds` (None: never)."""
        self.plugged = False
        self._unplugged_until = None if seconds is None else time.monotonic() + float(seconds)
        self._feeding.clear()
        log.warning("emulator: RealSense %s unplugged%s", self.serial, "" if seconds is None else f" for {seconds:g} s")

    # ------------------------------------------------------------------ streaming (called by the pipeline)

    def start_streaming(self, sink, depth: bool) -> None:
        """Feed the started sensors from now on, after the start-up delay."""
        self.stop_streaming()
        self._feeding.set()
        self._feeder = threading.Thread(target=self._feed, args=(self.device, sink, depth), name="emulated-realsense",
                                        daemon=True)
        self._feeder.start()

    def stop_streaming(self) -> None:
        thread, self._feeder = self._feeder, None
        self._feeding.clear()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def _feed(self, device, sink, depth: bool) -> None:
        import mujoco

        model = self.world.sim._model
        renderer = mujoco.Renderer(model, self.height, self.width)
        depth_renderer = None
        if depth:
            depth_renderer = mujoco.Renderer(model, self.height, self.width)
            depth_renderer.enable_depth_rendering()
        try:
            if not self._feeding.wait(0) or _sleep_while(self._feeding, self.startup_delay):
                return
            period, started, k = 1.0 / self.fps, time.monotonic(), 0
            deadline = time.monotonic()
            while self._feeding.is_set() and device is self.device and self.plugged:
                rgb, meters = self.world.render(renderer, depth_renderer)
                k += 1
                if k <= self.exposure_frames:  # auto-exposure still settling: darker frames
                    rgb = (rgb.astype(np.float32) * (k / (self.exposure_frames + 1))).astype(np.uint8)
                self.frame_number += 1
                with self._lock:
                    lost = self._drop > 0
                    self._drop -= int(lost)
                if lost:
                    self.frames_dropped += 1
                else:
                    ts = time.time() * 1e3
                    self._send("color", np.ascontiguousarray(rgb), 3, ts)
                    if depth:
                        z16 = np.clip(np.nan_to_num(meters) * 1000.0, 0, 65535).astype(np.uint16)  # (H, W) mm
                        self._send("depth", z16, 2, ts)
                    self.frames_sent += 1
                deadline += period
                if _sleep_while(self._feeding, deadline - time.monotonic()):
                    break
            log.debug("emulated RealSense feeder stops after %d frames (%.1f s)", k, time.monotonic() - started)
        finally:
            renderer.close()
            if depth_renderer is not None:
                depth_renderer.close()

    def _send(self, kind: str, pixels: np.ndarray, bpp: int, ts: float) -> None:
        rs = self.rs
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp, f.timestamp, f.frame_number = pixels, self.width * bpp, bpp, ts, self.frame_number
        f.domain, f.profile = rs.timestamp_domain.global_time, self.profiles[kind]
        if kind == "depth":
            f.depth_units = 0.001
        try:
            self.sensors[kind].on_video_frame(f)
        except RuntimeError as e:  # the sensor was stopped under us (pipeline.stop during a frame)
            log.debug("software sensor %s: %s", kind, e)

    # ------------------------------------------------------------------ sys.modules

    def install(self) -> callable:
        """Make `import pyrealsense2` return the real module with this camera's context/config/pipeline."""
        real = self.rs
        shim = types.ModuleType("pyrealsense2")
        shim.__dict__.update({k: v for k, v in real.__dict__.items() if not k.startswith("__")})
        shim.__doc__ = "pyrealsense2 with clamkit's emulated camera (clamkit.robot.emulate.realsense)"
        shim.context = lambda *args, **kwargs: _Context(self)
        shim.config = _Config
        shim.pipeline = lambda ctx=None: _Pipeline(self)
        old = sys.modules.get("pyrealsense2")
        sys.modules["pyrealsense2"] = shim

        def restore() -> None:
            self.stop_streaming()
            if old is None:
                sys.modules.pop("pyrealsense2", None)
            else:
                sys.modules["pyrealsense2"] = old

        return restore


def _sleep_while(event: threading.Event, seconds: float) -> bool:
    """Sleep up to `seconds` while `event` stays set; True when it was cleared (stop)."""
    end = time.monotonic() + max(seconds, 0.0)
    while event.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.02))
    return True


class _Context:
    """rs.context: query_devices() lists the emulated camera while it is plugged in."""

    def __init__(self, cam: EmulatedRealSense):
        self.cam = cam

    def query_devices(self, product_line: int | None = None) -> list:
        return self.cam.devices()


class _Config:
    """rs.config: what the application asked for."""

    def __init__(self):
        self.serial, self.streams = None, []

    def enable_device(self, serial: str) -> None:
        self.serial = str(serial)

    def enable_stream(self, stream, *args) -> None:
        # (stream) | (stream, format, fps) | (stream, width, height, format, fps) | (stream, index, width, height, format, fps)
        if len(args) == 5:
            args = args[1:]
        if len(args) == 4:
            w, h, fmt, fps = args
        elif len(args) == 2:
            w, h, (fmt, fps) = 0, 0, args
        else:
            w, h, fmt, fps = 0, 0, None, 0
        self.streams.append((stream, int(w), int(h), fmt, int(fps)))


class _Pipeline:
    """rs.pipeline on the emulated camera: profile negotiation, a real rs.syncer, stop()."""

    def __init__(self, cam: EmulatedRealSense):
        self.cam, self.rs = cam, cam.rs
        self._sensors: list = []
        self._syncer = None

    def start(self, config: _Config | None = None):
        rs, cam = self.rs, self.cam
        config = config or _Config()
        devices = cam.devices()
        if not devices or (config.serial is not None and config.serial != cam.serial):
            raise RuntimeError("No device connected")
        wanted = config.streams or [(rs.stream.color, 0, 0, None, 0)]
        chosen: dict[str, object] = {}
        for stream, w, h, fmt, fps in wanted:
            kind = "color" if stream == rs.stream.color else "depth" if stream == rs.stream.depth else None
            prof = cam.profiles.get(kind)
            if prof is None or (w and (prof.width(), prof.height()) != (w, h)) or (fmt is not None and prof.format() != fmt) \
                    or (fps and prof.fps() != fps):
                raise RuntimeError("Couldn't resolve requests")
            chosen[kind] = prof
        self._syncer = rs.syncer(2)
        for kind, prof in chosen.items():
            sensor = cam.sensors[kind]
            sensor.open(prof)
            sensor.start(self._syncer)
            self._sensors.append(sensor)
        cam.start_streaming(self._syncer, depth="depth" in chosen)
        return types.SimpleNamespace(get_device=lambda: cam.device, get_streams=lambda: list(chosen.values()))

    def try_wait_for_frames(self, timeout_ms: int = 5000):
        if self._syncer is None:
            raise RuntimeError("try_wait_for_frames cannot be called before start()")
        return self._syncer.try_wait_for_frames(timeout_ms)

    def wait_for_frames(self, timeout_ms: int = 5000):
        ok, frames = self.try_wait_for_frames(timeout_ms)
        if not ok:
            raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
        return frames

    def stop(self) -> None:
        if self._syncer is None:
            raise RuntimeError("stop() cannot be called before start()")
        self.cam.stop_streaming()
        for sensor in self._sensors:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError as e:  # the device went away
                log.debug("stopping a software sensor: %s", e)
        self._sensors, self._syncer = [], None
