"""`edgecam probe --clips`: what recording event clips costs on this device.

Encodes a few seconds of a camera-like scene (a gradient, a moving textured object, sensor
noise) at the configured size and frame rate with each H.264 encoder edgecam can use, as the
clip sink does (BGR -> YUV 4:2:0, one encoder thread), and reports CPU seconds per second of
video (1.0 = one core busy), milliseconds per frame and the bit rate (MB written per hour
while recording).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from ..clips.encoder import FrameEncoder, V4L2_ENCODER_DEVICE, hardware_encoder_present
from ..errors import EdgecamError

SOFTWARE_PRESETS = ("ultrafast", "veryfast")


@dataclass(frozen=True)
class EncoderCost:
    """One encoder's measured cost; `note` says why it was not measured, if it was not."""

    encoder: str
    preset: Optional[str]
    width: int
    height: int
    fps: float
    cpu_per_video_s: Optional[float] = None
    ms_per_frame: Optional[float] = None
    kbit_s: Optional[float] = None
    note: str = ""

    def to_json(self) -> dict:
        """The row of `edgecam probe --clips --json`."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def camera_like_frames(width: int, height: int, n: int, seed: int = 0) -> List[np.ndarray]:
    """`n` BGR frames: a still gradient scene, a textured block crossing it, and noise that
    changes every frame (what makes a real sensor's video cost more than a drawing's)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (
        np.stack(
            [
                (xx * 200 // max(1, width)),
                (yy * 180 // max(1, height)),
                ((xx + yy) * 120 // max(1, width + height)),
            ],
            axis=2,
        ).astype(np.int16)
        + 30
    )
    block_h, block_w = max(8, height // 3), max(8, width // 5)
    texture = rng.integers(0, 255, (block_h, block_w, 3), dtype=np.int16)
    frames = []
    for i in range(n):
        f = base.copy()
        x = int((width - block_w) * (i / max(1, n - 1)))
        y = height // 3
        f[y : y + block_h, x : x + block_w] = texture
        f += rng.normal(0, 3, f.shape).astype(np.int16)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames


def measure(
    encoder: str, preset: Optional[str], frames: Sequence[np.ndarray], fps: float, bitrate_kbps: int = 2000
) -> EncoderCost:
    """Encode `frames` once (after a one-second warm-up of the same frames) and time it."""
    h, w = frames[0].shape[:2]
    enc = FrameEncoder(w, h, fps, codec=encoder, preset=preset or "ultrafast", bitrate_kbps=bitrate_kbps)
    warm = max(1, int(fps))
    for i, f in enumerate(frames[:warm]):
        enc.encode(f, i / fps, i)
    size = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, f in enumerate(frames):
        for p in enc.encode(f, (warm + i) / fps, warm + i):
            size += len(p.data)
    for p in enc.flush():
        size += len(p.data)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    video_s = len(frames) / fps
    return EncoderCost(
        encoder,
        preset,
        enc.width,
        enc.height,
        fps,
        cpu / video_s,
        1000 * wall / len(frames),
        size * 8 / 1000 / video_s,
    )


def probe_clip_encoders(
    width: int,
    height: int,
    fps: float,
    seconds: float = 3.0,
    bitrate_kbps: int = 2000,
    progress: Optional[Callable[[str], None]] = None,
) -> List[EncoderCost]:
    """Each usable encoder's cost at this size and rate: x264 ultrafast and veryfast, and
    h264_v4l2m2m (the Pi 4's hardware encoder) where its device exists."""
    frames = camera_like_frames(width, height, max(2, int(seconds * fps)))
    rows = []
    for preset in SOFTWARE_PRESETS:
        if progress:
            progress(f"encoding {seconds:g} s of {width}x{height} at {fps:g} fps with libx264 {preset}")
        rows.append(measure("libx264", preset, frames, fps, bitrate_kbps))
    if not hardware_encoder_present():
        rows.append(
            EncoderCost(
                "h264_v4l2m2m",
                None,
                width,
                height,
                fps,
                note=f"not present (no {V4L2_ENCODER_DEVICE}; a Pi 5 has no "
                "hardware H.264 encoder, so clips are encoded in software)",
            )
        )
        return rows
    try:
        rows.append(measure("h264_v4l2m2m", None, frames, fps, bitrate_kbps))
    except EdgecamError as exc:
        rows.append(EncoderCost("h264_v4l2m2m", None, width, height, fps, note=str(exc)))
    return rows


def format_clip_costs(rows: Sequence[EncoderCost]) -> str:
    """The text table of `edgecam probe --clips`."""
    first = rows[0]
    lines = [
        f"clip encoding at {first.width}x{first.height}, {first.fps:g} fps "
        "(CPU s per s of video: 1.00 = one core busy)",
        f"{'encoder':<26}{'CPU/s':>8}{'ms/frame':>10}{'kbit/s':>9}{'MB/hour':>9}",
    ]
    for r in rows:
        name = r.encoder + (f" {r.preset}" if r.preset else "")
        if r.cpu_per_video_s is None:
            lines.append(f"{name:<26}  {r.note}")
            continue
        mb_hour = (r.kbit_s or 0.0) * 1000 / 8 * 3600 / 2**20
        lines.append(
            f"{name:<26}{r.cpu_per_video_s:>8.2f}{r.ms_per_frame:>10.2f}{r.kbit_s:>9.0f}{mb_hour:>9.0f}"
        )
    return "\n".join(lines)
