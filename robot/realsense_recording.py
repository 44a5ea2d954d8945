"""Write a RealSense recording (.db3) from numpy frames, no camera needed: rs.software_device + rs.recorder.

    write_recording("cam.db3", frames, width=640, height=480)          # frames: iterable of (480, 640, 3) uint8
    RealSenseCamera(recording="cam.db3", width=640, height=480)        # plays them back, frame-exact

Tests synthesise camera streams with it (tests/robot/test_realsense.py) and benchmarks/latency.py feeds the
control loop 640x480 frames through the very camera class a robot uses. pyrealsense2 2.59's recorder writes
.db3 (rosbag2) only. Frames are iterated lazily, so a long recording need not fit in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from clamkit.robot.realsense import _rs


def software_camera(rs, *, width: int, height: int, fps: int, focal: float, serial: str, name: str,
                    color_format, depth: bool, **info) -> tuple:
    """A pyrealsense2 software device shaped like a D435: a colour stream and, with depth, a z16 stream aligned
    to it (identity extrinsics), pinhole intrinsics centred on the image. Extra `info` (e.g. product_line)
    is registered as camera_info. Returns (device, {"color"[, "depth"]: sensor}, {"color"[, "depth"]: profile})."""
    W, H = int(width), int(height)

    def stream(kind, uid, bpp, fmt):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = kind, 0, uid, W, H, fps, bpp, fmt
        i = rs.intrinsics()
        i.width, i.height, i.ppx, i.ppy, i.fx, i.fy = W, H, W / 2, H / 2, float(focal), float(focal)
        i.model, i.coeffs = rs.distortion.none, [0.0] * 5
        vs.intrinsics = i
        return vs

    dev = rs.software_device()
    for key, value in {"name": name, "serial_number": serial, **info}.items():
        dev.register_info(getattr(rs.camera_info, key), value)
    sensors = {"color": dev.add_sensor("RGB Camera")}
    profiles = {"color": sensors["color"].add_video_stream(stream(rs.stream.color, 0, 3, color_format))}
    if depth:
        sensors["depth"] = dev.add_sensor("Stereo Module")
        sensors["depth"].add_read_only_option(rs.option.depth_units, 0.001)
        profiles["depth"] = sensors["depth"].add_video_stream(stream(rs.stream.depth, 1, 2, rs.format.z16))
        ext = rs.extrinsics()
        ext.rotation, ext.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        profiles["depth"].register_extrinsics_to(profiles["color"], ext)
    return dev, sensors, profiles


def write_recording(path: str | Path, frames: Iterable[np.ndarray], *, width: int, height: int, fps: int = 30,
                    depth: Iterable[np.ndarray] | None = None, fmt: str = "rgb8", pause: float = 0.002) -> str:
    """Record colour `frames` ((height, width, 3) uint8, in `fmt` channel order) and optionally `depth`
    ((height, width) uint16 millimetres, paired one to one, aligned: identity extrinsics). Frame k gets
    hardware timestamp (k + 1) / fps s and frame number k + 1. Returns the path."""
    rs = _rs()
    W = int(width)
    dev, sensor, prof = software_camera(rs, width=width, height=height, fps=fps, focal=float(W), serial="000000000042",
                                        name="clamkit synthetic camera", color_format=getattr(rs.format, fmt),
                                        depth=depth is not None)
    color_sensor, cprof = sensor["color"], prof["color"]
    depth_sensor, dprof = sensor.get("depth"), prof.get("depth")
    recorder = rs.recorder(str(path), dev)
    sensors = recorder.query_sensors()
    for s in sensors:
        s.open(s.get_stream_profiles())
        s.start(lambda f: None)
    depths = iter(depth) if depth is not None else None
    for k, img in enumerate(frames):
        ts = (k + 1) * 1000.0 / fps
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp, f.timestamp, f.frame_number = np.ascontiguousarray(img, np.uint8), W * 3, 3, ts, k + 1
        f.domain, f.profile = rs.timestamp_domain.hardware_clock, cprof.as_video_stream_profile()
        color_sensor.on_video_frame(f)
        if depths is not None:
            g = rs.software_video_frame()
            g.pixels, g.stride, g.bpp, g.timestamp, g.frame_number = np.ascontiguousarray(next(depths), np.uint16), W * 2, 2, ts, k + 1
            g.domain, g.profile, g.depth_units = rs.timestamp_domain.hardware_clock, dprof.as_video_stream_profile(), 0.001
            depth_sensor.on_video_frame(g)
        time.sleep(pause)  # let the recorder's writer thread keep up (the tests have always paused 2 ms)
    for s in sensors:
        s.stop()
        s.close()
    del recorder, sensors  # the file is finalised when the recorder is destroyed
    return str(path)
