"""An RTSP stream read through PyAV, for clips that keep the camera's own H.264.

With clips on, an rtsp:// source is read here instead of through OpenCV: one connection,
each packet demuxed once, handed as it came to a recorder (clips.stream.StreamClipTap) that
remuxes it into the clips, and decoded once to the BGR frame the detector sees. Nothing is
encoded for the clips and nothing decoded twice.

The frames carry the stream's own times (its packets' presentation times, set on the wall
clock where the connection began, never ahead of now nor more than MAX_LAG_S behind it), so
a frame and its packet have one time and the clip plays at the camera's rate, not at the rate
the packets happened to arrive.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from .base import SourceSpec
from .live import CaptureDevice, Captured

log = logging.getLogger("edgecam.sources")

# Interleaved TCP: a clip is the camera's packets as they came, so none may be lost on the way
# (over UDP one lost packet spoils the frames up to the next keyframe). No probing beyond the
# stream's description (SDP): it names the codec, size and parameter sets, and what a probe
# reads is handed out in one burst after it, at one arrival time.
OPEN_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32"}
MAX_LAG_S = 1.0
ANNEXB_START = (b"\x00\x00\x01", b"\x00\x00\x00\x01")
NAL_SPS = 7


def remux_refusal(codec: str, b_frames: bool, extradata: bytes) -> Optional[str]:
    """Why packets of this stream cannot be remuxed into an MP4 clip as they are, or None."""
    if codec != "h264":
        return "not H.264"
    if b_frames:
        return "it has B-frames"
    if extradata and not extradata.startswith(ANNEXB_START):
        return "its parameter sets are not in Annex B form"
    return None


def has_sps(data: bytes) -> bool:
    """True when an Annex B access unit holds a sequence parameter set (NAL type 7)."""
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        if data[i + 3] & 0x1F == NAL_SPS:
            return True
        i = data.find(b"\x00\x00\x01", i + 3)
    return False


class StreamCapture(CaptureDevice):
    """One connection to an RTSP stream: `read()` demuxes packets, gives the H.264 ones to
    `recorder` (when the stream can be remuxed) and returns the next decoded frame."""

    def __init__(self, uri: str, spec: SourceSpec, recorder):
        import av

        self.name, self._recorder = uri, recorder
        self._began = time.time()
        timeout = spec.stall_timeout
        self._container = av.open(uri, options=OPEN_OPTIONS, timeout=(timeout, timeout))
        try:
            self._stream = self._container.streams.video[0]
        except IndexError:
            self._container.close()
            raise OSError("the stream has no video") from None
        cc = self._stream.codec_context
        self._time_base = float(self._stream.time_base or 1 / 90000)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self._frame_s = 1.0 / float(rate) if rate else 1.0 / spec.fps
        extradata = bytes(cc.extradata or b"")
        refusal = remux_refusal(cc.name, bool(cc.has_b_frames), extradata)
        # The parameter sets come in the stream's description; an MP4 needs them in its first
        # packet, so a keyframe sent without them gets them put before it.
        self._parameter_sets = extradata
        self._remux = bool(recorder.opened(uri, cc.name, (cc.width, cc.height), refusal))
        self._invalid = av.InvalidDataError
        self._packets = self._container.demux(self._stream)
        self._offset: Optional[float] = None  # wall time - stream time
        self._last_t: Optional[float] = None

    def read(self) -> Optional[Captured]:
        for packet in self._packets:
            if packet.size == 0:  # the demuxer's flush at the stream's end
                continue
            t = self._time(packet.pts if packet.pts is not None else packet.dts)
            if self._remux:
                self._record(packet, t)
            try:
                frames = packet.decode()
            except self._invalid as exc:  # a damaged packet costs its frame, not the connection
                log.debug("%s: a packet did not decode: %s", self.name, exc)
                continue
            if frames:
                frame = frames[-1]
                ts = t if frame.pts is None or self._offset is None else self._at(frame.pts)
                return frame.to_ndarray(format="bgr24"), None, None, ts
        return None  # the stream ended: the source reconnects

    def release(self) -> None:
        self._container.close()

    def _record(self, packet, t: float) -> None:
        if packet.pts is not None and packet.dts is not None and packet.pts != packet.dts:
            # Out of display order after all (B-frames the description did not tell of).
            self._remux = False
            self._recorder.refused(self.name, "it has B-frames")
            return
        data = bytes(packet)
        key = bool(packet.is_keyframe)
        if key and not has_sps(data):
            data = self._parameter_sets + data
        self._recorder.received(t, key, data)

    def _at(self, pts: int) -> float:
        assert self._offset is not None
        return self._offset + pts * self._time_base

    def _time(self, pts: Optional[int]) -> float:
        # A packet without a time comes one frame after the last (the first: when we connected).
        follows = self._began if self._last_t is None else self._last_t + self._frame_s
        if pts is None:
            t = follows
        else:
            if self._offset is None:
                self._offset = follows - pts * self._time_base
            t = self._at(pts)
            now = time.time()
            if t > now or now - t > MAX_LAG_S:  # the camera's clock runs apart from ours, or jumped
                self._offset += now - t
                t = now
        self._last_t = t
        return t
