"""Clips from the Pi camera through picamera2's own H.264 encoder, on the main stream.

With the Pi camera as the source, the frames are not encoded by edgecam at all: picamera2's
`H264Encoder` encodes the main stream of every frame the camera makes, in picamera2's
thread: the V4L2 hardware encoder on a Pi 4 and earlier, libx264 through PyAV in software on
a Pi 5, which has no hardware encoder (picamera2 picks `LibavH264Encoder` there). The lores
frames the model sees never pass through it. Its packets come to a picamera2 `Output` of
ours and go into the same pre-roll ring and clip writer as the PyAV path's, so both paths
make the same clips (the pre-roll cut exactly at its start, `+faststart`, the sidecar).

picamera2's own `CircularOutput2` + `PyavOutput` would record too, but a clip would then
start at the oldest keyframe of its buffer, always `buffer_duration_ms` late, and without
`+faststart` (PyavOutput takes no muxer options).
"""

from __future__ import annotations

import fractions
import logging
import time
from typing import Optional

from .packets import PacketTap

log = logging.getLogger(__name__)


class PicameraClipTap(PacketTap):
    """Starts picamera2's H264Encoder on the camera's main stream and collects its packets
    for the clip sink (`drain()`), timed on the frames' clock (unix seconds).

    PicameraCapture calls `started(cam)` once the camera runs and `stopping(cam)` before it
    stops it (a reconnect starts a new encoder).
    """

    def __init__(self, fps: float, bitrate_kbps: int, keyframe_interval: float):
        super().__init__()
        self.fps, self.bitrate_kbps, self.keyframe_interval = fps, bitrate_kbps, keyframe_interval
        self._encoder = None

    @property
    def active(self) -> bool:
        """True while picamera2's encoder runs for us."""
        return self._encoder is not None

    def started(self, cam) -> None:
        """Start the encoder on `cam`'s main stream (called by PicameraCapture)."""
        from picamera2.encoders import H264Encoder
        from picamera2.outputs import Output

        tap = self

        class ClipOutput(Output):
            """picamera2 calls outputframe with each encoded frame of the main stream."""

            def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
                if not audio:
                    tap._received(bytes(frame), bool(keyframe), None if timestamp is None else int(timestamp))

        # A Fraction: LibavH264Encoder hands the rate to PyAV's add_stream, which takes no float.
        encoder = H264Encoder(
            bitrate=self.bitrate_kbps * 1000,
            repeat=True,
            iperiod=max(1, round(self.fps * self.keyframe_interval)),
            framerate=fractions.Fraction(self.fps).limit_denominator(1001),
        )
        cam.start_encoder(encoder, ClipOutput(), name="main")
        self.size = tuple(cam.stream_configuration("main")["size"])
        # SensorTimestamp is CLOCK_BOOTTIME; the frames' ts are wall-clock seconds.
        self._wall_minus_boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        self._encoder, self.encoder_name = encoder, f"picamera2 {type(encoder).__name__}"
        log.info("clips: %s encodes the camera's main stream %dx%d", self.encoder_name, *self.size)

    def stopping(self, cam) -> None:
        """Stop the encoder before the camera stops (its last packets are kept)."""
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            try:
                cam.stop_encoder(encoder)
            except Exception as exc:  # a camera gone away must not stop the release
                log.warning("clips: stopping picamera2's encoder failed: %s", exc)

    def _received(self, data: bytes, key: bool, timestamp_us: Optional[int]) -> None:
        encoder = self._encoder
        first = getattr(encoder, "firsttimestamp", None) if encoder is not None else None
        if first is None or timestamp_us is None:  # an encoder that gives no times: now
            t = time.time()
        else:
            t = (first + timestamp_us) / 1e6 + self._wall_minus_boot
        self._add(t, key, data)
