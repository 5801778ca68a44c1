"""Frames -> H.264 packets through PyAV: libx264, or h264_v4l2m2m (the Pi 4's hardware
encoder) where it opens.

The encoder runs on every frame (a clip's pre-roll is footage from before the event), so it
is set for little CPU and no delay: x264 `ultrafast` with `zerolatency` (no B-frames, no
look-ahead: each frame's packet comes out at once) on one thread, a keyframe every
`keyframe_interval` seconds, and a rate cap so the pre-roll ring's size is known.
"""

from __future__ import annotations

import fractions
import logging
import os
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, cast

import numpy as np

from ..errors import EdgecamError
from .packets import EncodedPacket

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

TIME_BASE = fractions.Fraction(1, 1000)  # packet times in ms
ENCODERS = ("libx264", "h264_v4l2m2m")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
V4L2_ENCODER_DEVICE = "/dev/video11"  # bcm2835-codec's encoder on a Pi 4 (none on a Pi 5)


def hardware_encoder_present(device: str = V4L2_ENCODER_DEVICE) -> bool:
    """True when the Pi 4's V4L2 H.264 encoder device exists (a Pi 5 has none)."""
    return os.path.exists(device)


def pick_encoder(name: str) -> str:
    """`auto` -> h264_v4l2m2m where the hardware encoder exists, else libx264; a named one as is."""
    if name != "auto":
        return name
    return "h264_v4l2m2m" if hardware_encoder_present() else "libx264"


class FrameEncoder:
    """Encodes BGR frames of one size into EncodedPackets, times taken from the frames.

    `encode(image, t, seq, key=True)` forces a keyframe (a clip split starts on one).
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        codec: str = "libx264",
        preset: str = "ultrafast",
        bitrate_kbps: int = 2000,
        keyframe_interval: float = 1.0,
        threads: int = 1,
    ):
        import av

        self.width, self.height, self.codec = width - width % 2, height - height % 2, codec
        self._av = av
        try:
            ctx = cast("av.VideoCodecContext", av.CodecContext.create(codec, "w"))
        except (av.FFmpegError, ValueError) as exc:
            raise EdgecamError(
                f"[clips] encoder {codec!r} is not available in this PyAV build ({exc}): use libx264"
            ) from None
        ctx.width, ctx.height = self.width, self.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = fractions.Fraction(round(fps * 1000), 1000)
        ctx.gop_size = max(1, round(fps * keyframe_interval))
        ctx.max_b_frames = 0
        ctx.bit_rate = bitrate_kbps * 1000
        ctx.thread_count = threads
        if codec == "libx264":
            # Constant quality, capped: a still scene costs little, a busy one no more than the cap.
            ctx.options = {
                "preset": preset,
                "tune": "zerolatency",
                "crf": "23",
                "maxrate": f"{bitrate_kbps}k",
                "bufsize": f"{2 * bitrate_kbps}k",
                "keyint_min": str(ctx.gop_size),
                "forced-idr": "1",
            }
        try:
            ctx.open()
        except av.FFmpegError as exc:
            raise EdgecamError(
                f'[clips] encoder {codec!r} cannot be opened ({exc}): use encoder = "libx264"'
            ) from None
        self._ctx = ctx
        self._last_pts: Optional[int] = None
        self._origin: Optional[float] = None
        self._pending: Dict[int, Tuple[float, int]] = {}  # pts -> (t, seq) of frames not yet out

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) encoded; odd sizes lose a column or row (yuv420p needs even ones)."""
        return self.width, self.height

    def encode(self, image: np.ndarray, t: float, seq: int, key: bool = False) -> List[EncodedPacket]:
        """Encode one frame captured at `t`; returns the packets that came out (with
        zerolatency x264: this frame's)."""
        av = self._av
        if self._origin is None:
            self._origin = t
        pts = round((t - self._origin) * 1000)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # a wall clock that stepped back must not stop the encoder
        self._last_pts = pts
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = np.ascontiguousarray(image[: self.height, : self.width])
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        if key:
            frame.pict_type = av.video.frame.PictureType.I
        self._pending[pts] = (t, seq)
        return self._collect(self._ctx.encode(frame))

    def flush(self) -> List[EncodedPacket]:
        """What the encoder still holds (none with zerolatency x264)."""
        return self._collect(self._ctx.encode(None))

    def _collect(self, packets) -> List[EncodedPacket]:
        out = []
        for p in packets:
            t, seq = self._pending.pop(p.pts, (self._origin + p.pts / 1000.0, -1))
            out.append(EncodedPacket(t, seq, bool(p.is_keyframe), bytes(p)))
        return out
