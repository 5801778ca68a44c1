"""Clips from an RTSP camera's own H.264: its packets, remuxed into the clip, never decoded or
encoded for it.

The stream's capture (sources.stream.StreamCapture) demuxes each packet once: it hands the
H.264 ones here as the camera sent them and decodes the same packet for the detector. The
clip sink records them through the same pre-roll ring and clip writer as the other paths
(the pre-roll cut at its start, `+faststart`, the sidecar), so no encoder runs for clips.

A stream that cannot be remuxed (not H.264, or with B-frames, whose packets come out of
display order) is said once in the log, and the sink encodes the decoded frames instead.
"""

from __future__ import annotations

import logging
from typing import Optional, Tuple

from .packets import PacketTap

log = logging.getLogger(__name__)

REMUXED = "camera H.264, remuxed"  # the sidecar's `encoder`


class StreamClipTap(PacketTap):
    """The H.264 packets of an RTSP stream for the clip sink. The capture calls `opened()` on
    each connection, `received()` with each packet and `refused()` when it finds the stream
    cannot be remuxed after all."""

    def __init__(self):
        super().__init__()
        self._said_why: Optional[str] = None

    def opened(self, source: str, codec: str, size: Tuple[int, int], refusal: Optional[str]) -> bool:
        """A connection to `source` is up, sending `codec` frames of `size`; `refusal` says why
        its packets cannot be remuxed, None when they can. True when the packets are wanted."""
        if refusal is not None:
            self.refused(source, f"{codec}, {refusal}")
            return False
        if self.encoder_name is None:
            log.info("clips: recording %s's own H.264 (%dx%d) as it comes: no encoder runs", source, *size)
        self.size, self.encoder_name = size, REMUXED
        return True

    def refused(self, source: str, why: str) -> None:
        """The packets of `source` cannot be remuxed (`why`): the sink encodes frames instead."""
        if why != self._said_why:  # once, not on every reconnection
            log.info("clips: %s cannot be remuxed (%s): edgecam encodes its clips itself", source, why)
            self._said_why = why
        self.encoder_name = None

    def received(self, t: float, key: bool, data: bytes) -> None:
        """One H.264 access unit (Annex B, parameter sets before each keyframe) captured at `t`."""
        self._add(t, key, data)
