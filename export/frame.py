"""Raw camera frames in the graph: `clam-export RUN --frame 640x480`.

A pixel policy is trained on frames the camera path made small in numpy (robot/realsense.py: centre crop
to the training frames' aspect ratio, then area resize, rounded to uint8). With --frame the exported graph
takes the camera's raw uint8 frame at capture size instead and does that crop + resize inside the graph,
then the policy's own preprocessing (scale to [0, 1], resize to the model size) as before: on the robot,
TensorRT runs it on the GPU and the CPU does no per-pixel work.

    FramePreprocess((480, 640), (64, 64))   uint8 (B, 480, 640, 3) -> float (B, 64, 64, 3) holding exactly the
                                             uint8 values center_crop + resize_area give (ties aside, below)
    RawFramePolicy(policy, (480, 640))      policy(FramePreprocess(x)): what is exported
    check_frame_parity(...)                 the in-graph path against the numpy camera path, at export

Exact integer arithmetic, so torch, onnxruntime and TensorRT fp32 agree bit for bit: an area resize by
n_in/n_out = p/q (lowest terms) repeats every p input pixels, and q x (overlap of input j with output i) is
an integer. Each axis is one MatMul of an integer (q, p) matrix over groups of p pixels (O(n_in q) work, not
the O(n_in n_out) of a dense resize matrix); sums of integers stay exact in float32 below 2^24; the rounding
floor((2S + D) / 2D) of the sum S over the area D is exact while D < 32,768. numpy's resize_area does the
same integer sums, so the two agree bit for bit; the export check still allows rounding ties (1 LSB) and
reports how many it saw.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from clamkit.errors import UserError
from clamkit.imageops import camera_view, center_crop

EXACT_AREA_MAX = 32_768  # largest area (in input pixels x q^2) whose rounding is exact in float32
TIE_FRACTION_MAX = 1e-3  # share of pixels allowed to differ by 1 LSB from numpy (rounding ties only)


def parse_frame(text: str) -> tuple[int, int]:
    """'640x480' -> (480, 640) as (height, width)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UserError(f"--frame {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if w < 1 or h < 1:
        raise UserError(f"--frame {text!r}: width and height must be positive")
    return h, w


def crop_box(frame_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, x0, height, width) of the camera's centre crop, read off center_crop itself (one definition)."""
    h, w = frame_hw
    idx = center_crop(np.arange(h * w).reshape(h, w), *out_hw)  # (ch, cw) of flat pixel indices
    y0, x0 = divmod(int(idx[0, 0]), w)
    return y0, x0, idx.shape[0], idx.shape[1]


def area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, int, int]:
    """Integer area weights of one period: (q, p) matrix W with W[i, j] = q x overlap(input j, output i),
    and p, q with n_in / n_out = p / q. Each row sums to p."""
    g = math.gcd(n_in, n_out)
    p, q = n_in // g, n_out // g
    i, j = np.arange(q)[:, None], np.arange(p)[None, :]
    W = np.maximum(0, np.minimum((i + 1) * p, (j + 1) * q) - np.maximum(i * p, j * q))  # (q, p)
    return W.astype(np.float32), p, q


class FramePreprocess(nn.Module):
    """uint8 (B, h, w, 3) raw frame -> float (B, H, W, 3): centre crop + area resize + round, in the graph."""

    def __init__(self, frame_hw: tuple[int, int], out_hw: tuple[int, int]):
        super().__init__()
        self.frame_hw, self.out_hw = tuple(frame_hw), tuple(out_hw)
        self.y0, self.x0, self.ch, self.cw = crop_box(self.frame_hw, self.out_hw)
        H, W = self.out_hw
        if H > self.ch or W > self.cw:
            raise UserError(f"--frame {self.frame_hw[1]}x{self.frame_hw[0]}: the crop ({self.cw}x{self.ch}) is smaller "
                            f"than the training frames ({W}x{H}); the graph only downsizes")
        wh, self.ph, self.qh = area_weights(self.ch, H)
        ww, self.pw, self.qw = area_weights(self.cw, W)
        self.register_buffer("wh", torch.from_numpy(wh))  # (qh, ph)
        self.register_buffer("ww", torch.from_numpy(ww))  # (qw, pw)
        self.area = self.ph * self.pw  # the weights of one output pixel sum to this
        self.exact = self.area < EXACT_AREA_MAX and 255 * self.area < 2 ** 24

    def crop_text(self) -> str:
        return f"{self.cw}x{self.ch} at x {self.x0}, y {self.y0}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        H, W = self.out_hw
        h, w = self.frame_hw
        x = x.float()  # (B, h, w, 3); the uint8 input goes straight into a Cast (TensorRT)
        if (self.y0, self.ch) != (0, h):
            x = x[:, self.y0:self.y0 + self.ch]  # (B, ch, w, 3) row crop (none for landscape frames)
        # Rows first, over the full width: the column crop then slices a 64-row tensor, not the whole frame.
        x = x.reshape(B, self.ch // self.ph, self.ph, w * 3)  # (B, gh, ph, w*3)
        x = torch.matmul(self.wh, x)  # (B, gh, qh, w*3)
        x = x.reshape(B, H, w, 3)[:, :, self.x0:self.x0 + self.cw]  # (B, H, cw, 3)
        # Columns as one GEMM with the pixels last: (B*H*3*gw, pw) @ (pw, qw); a (qw, pw) @ (pw, 3) per group
        # is thousands of tiny GEMMs (measured 0.29 ms of a 0.59 ms graph).
        x = x.transpose(2, 3).reshape(B, H, 3, self.cw // self.pw, self.pw)  # (B, H, 3, gw, pw)
        x = torch.matmul(x, self.ww.t())  # (B, H, 3, gw, qw)
        x = x.reshape(B, H, 3, W).transpose(2, 3)  # (B, H, W, 3) integer sums S over an area of D = ph*pw
        return torch.floor((2.0 * x + self.area) / (2.0 * self.area))  # round half up, as resize_area does


class RawFramePolicy(nn.Module):
    """policy(FramePreprocess(frame)): the deploy policy fed raw camera frames. Same input_names."""

    def __init__(self, policy: nn.Module, frame_hw: tuple[int, int], image_hw: tuple[int, int]):
        super().__init__()
        self.policy, self.frame = policy, FramePreprocess(frame_hw, image_hw)
        self.input_names = list(policy.input_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.policy(self.frame(x))  # (B, A)


def numpy_camera_path(frames: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """What training saw: the RealSense class's numpy crop + area resize, frame by frame. (B, H, W, 3) uint8."""
    H, W = image_hw
    return np.stack([camera_view(f, H, W) for f in frames])


def raw_frames(samples: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Capture-size frames whose centre crop shows the recorded training frames (nearest upscaling) and whose
    margins hold a ramp the crop must cut away: parity inputs that look like the training data."""
    h, w = frame_hw
    H, W = samples.shape[1:3]
    y0, x0, ch, cw = crop_box(frame_hw, (H, W))
    rows = np.minimum((np.arange(ch) * H) // ch, H - 1)
    cols = np.minimum((np.arange(cw) * W) // cw, W - 1)
    out = np.empty((len(samples), h, w, 3), np.uint8)
    out[:] = (np.arange(w, dtype=np.int64) * 255 // max(w - 1, 1)).astype(np.uint8)[None, None, :, None]
    out[:, y0:y0 + ch, x0:x0 + cw] = samples[:, rows[:, None], cols[None, :]]
    return out


@torch.no_grad()
def check_frame_parity(policy: nn.Module, raw: RawFramePolicy, frames: np.ndarray, graph_actions: np.ndarray,
                       tol_max_abs: float) -> dict:
    """The in-graph preprocessing against the training-time (numpy camera) path, on the same raw frames:
    pixels (torch FramePreprocess vs numpy, in LSB) and actions (exported graph on raw frames vs the torch
    policy on numpy-preprocessed frames). Passes when pixels differ by at most 1 LSB on at most
    TIE_FRACTION_MAX of them and, where no pixel differs, the actions agree within `tol_max_abs`."""
    H, W = raw.frame.out_hw
    ref = numpy_camera_path(frames, (H, W))  # (B, H, W, 3) uint8
    got = raw.frame(torch.from_numpy(frames)).numpy()  # (B, H, W, 3) float, integer-valued
    diff = np.abs(got - ref.astype(np.float32))
    ref_actions = policy(torch.from_numpy(ref)).float().numpy()  # the training-time path
    same = diff.reshape(len(frames), -1).max(1) == 0  # frames whose every pixel agrees
    err = np.abs(ref_actions - graph_actions).max(1)  # (B,)
    out = {"frame_hw": list(raw.frame.frame_hw), "image_hw": [H, W], "crop_yx_hw": [raw.frame.y0, raw.frame.x0, raw.frame.ch, raw.frame.cw],
           "resize": "area", "exact_integer_area": bool(raw.frame.exact), "frames": int(len(frames)),
           "pixels_max_abs_lsb": float(diff.max()), "pixels_differing": int((diff > 0).sum()), "pixels": int(diff.size),
           "action_max_abs_error": float(err.max()),
           "action_max_abs_error_identical_pixels": float(err[same].max()) if same.any() else None}
    out["passed"] = bool(out["pixels_max_abs_lsb"] <= 1 and out["pixels_differing"] <= TIE_FRACTION_MAX * diff.size
                         and (not same.any() or out["action_max_abs_error_identical_pixels"] <= tol_max_abs))
    return out
