"""Encoded packets, the pre-roll ring that holds the last seconds of them, and the tap that
collects a camera's own packets for the clip sink."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Deque, List, Optional, Tuple

QUEUE_MAX = 900  # packets a tap keeps for the sink (30 s at 30 fps) if it falls behind


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded H.264 frame: its capture time `t` (the frame's `ts`, unix seconds), the
    frame's sequence number, whether it is a keyframe, and the bytes (Annex B)."""

    t: float
    seq: int
    key: bool
    data: bytes


class PacketRing:
    """The newest encoded packets, for `seconds` back and at most `max_bytes` in all.

    Packets, not decoded frames: a second of 640x480 H.264 is ~100-250 kB where a second of
    raw frames is ~14 MB. A clip's pre-roll is read from here, starting on a keyframe.
    """

    def __init__(self, seconds: float, max_bytes: int):
        self.seconds, self.max_bytes = seconds, max_bytes
        self._packets: Deque[EncodedPacket] = collections.deque()
        self._bytes = 0
        self.evicted_early = 0  # packets dropped by the byte cap before their time was up

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._packets)

    def add(self, packet: EncodedPacket) -> None:
        """Append the newest packet and forget what is too old or over the byte cap."""
        self._packets.append(packet)
        self._bytes += len(packet.data)
        while (
            self._packets
            and (packet.t - self._packets[0].t > self.seconds or self._bytes > self.max_bytes)
            and len(self._packets) > 1
        ):
            if packet.t - self._packets[0].t <= self.seconds:
                self.evicted_early += 1
            self._bytes -= len(self._packets.popleft().data)
        # A ring that starts mid-GOP cannot be decoded from its head: drop to the first keyframe.
        while self._packets and not self._packets[0].key:
            self._bytes -= len(self._packets.popleft().data)

    def after(self, seq: int, until: float) -> List[EncodedPacket]:
        """The packets of frames after frame `seq`, captured at or before `until`."""
        return [p for p in self._packets if p.seq > seq and p.t <= until]

    def since(self, t: float) -> List[EncodedPacket]:
        """The packets from the last keyframe at or before `t` (or the oldest keyframe held,
        when nothing that old is left) to the newest."""
        packets = list(self._packets)
        start = 0
        for i, p in enumerate(packets):
            if p.key and p.t <= t:
                start = i
            elif p.t > t:
                break
        return packets[start:]


class PacketTap:
    """H.264 packets a camera encoded itself (picamera2's encoder, an RTSP camera), collected
    on the capture's thread for the clip sink, which records them instead of encoding frames.

    `encoder_name` names what made them while they come (the sidecar says it), None while
    none do: the sink then encodes the frames itself. `size` is their (width, height).
    Packets are numbered in arrival order; the sink matches them to frames by time.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._packets: Deque[EncodedPacket] = collections.deque(maxlen=QUEUE_MAX)
        self._seq = 0
        self.size: Optional[Tuple[int, int]] = None
        self.encoder_name: Optional[str] = None

    def drain(self) -> List[EncodedPacket]:
        """The packets received since the last call, oldest first."""
        with self._lock:
            out = list(self._packets)
            self._packets.clear()
        return out

    def _add(self, t: float, key: bool, data: bytes) -> None:
        with self._lock:
            self._seq += 1
            self._packets.append(EncodedPacket(t, self._seq, key, data))
