"""The clip sink: encodes every frame (or takes a camera tap's own packets) into the pre-roll
ring and writes the clips the plan asks for, on its own pipeline thread (a slow disk delays
clips, never detection).

A disk that is full, read-only or gone is logged once; the clip being written is given up
and the next one is tried again (logged again only once one has been written).
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Deque, Dict, Optional, Tuple

import av
import numpy as np

from ..datatypes import Event, FrameResult, FrameState
from ..files import make_dir, write_atomic
from ..stages import Sink
from .encoder import FrameEncoder
from .packets import EncodedPacket, PacketRing
from .plan import ClipNote, ClipNotes, CloseClip, OpenClip
from .store import prune, remove_partials
from .writer import ClipWriter

log = logging.getLogger(__name__)

# The ring holds the pre-roll plus what passes between an object's first sighting and its
# start event (min_hits frames) plus a keyframe interval: this many seconds more.
RING_SLACK_S = 5.0
# A clip is written this far behind the newest frame: an end event comes max_missed frames
# after the object was last seen, and a post-roll shorter than that must still end the clip
# at last seen + post_roll, with the frames after it never written.
WRITE_LAG_S = 3.0
DISK_ERRORS = (OSError, av.FFmpegError)


@dataclass(frozen=True)
class ClipSettings:
    """What the sink needs from [clips]: the folder, pre-roll, budget and encoder options."""

    folder: Path
    pre_roll: float = 3.0
    max_mb: float = 1024.0
    max_days: float = 7.0
    codec: str = "libx264"
    preset: str = "ultrafast"
    bitrate_kbps: int = 2000
    keyframe_interval: float = 1.0
    fps: float = 30.0


class ClipSink(Sink):
    """Pipeline sink writing the clips of `notes` (from plan.ClipStage) into `settings.folder`.

    `image(result)` is the picture recorded: the raw frame, or the annotated one
    (`annotate = true`). `tap` (clips.packets.PacketTap: picamera2's encoder, an RTSP
    camera's packets): while packets come through it, they are recorded instead and no frame
    is encoded here.
    """

    name = "clips"
    takes_flush = True

    def __init__(
        self,
        settings: ClipSettings,
        notes: ClipNotes,
        image: Callable[[FrameResult], np.ndarray] = lambda r: r.frame.image,
        tap=None,
    ):
        self.settings, self.notes, self._image, self.tap = settings, notes, image, tap
        self._recent: Deque[Tuple[float, int]] = collections.deque(maxlen=256)  # (ts, seq)
        make_dir(settings.folder)
        remove_partials(settings.folder)
        prune(settings.folder, settings.max_mb, settings.max_days)
        seconds = settings.pre_roll + settings.keyframe_interval + RING_SLACK_S + WRITE_LAG_S
        # Bytes: the rate cap over that window, twice (x264's VBV lets a second overshoot).
        self.ring = PacketRing(seconds, int(2 * settings.bitrate_kbps * 1000 / 8 * seconds))
        self.encoder: Optional[FrameEncoder] = None
        self.writer: Optional[ClipWriter] = None
        self._force_key = False
        self._cursor = -1  # the last frame (seq) given to the writer
        self._boxes: Dict[int, Tuple[dict, ...]] = {}
        self._disk_ok = True
        self._was_tapped = False
        self.written = 0
        self.failed = 0

    def handle(self, result: FrameResult) -> None:
        for note in self.notes.take(result.frame.seq):
            self._apply(note)
        self._thumbnails(result)
        if result.state is FrameState.FLUSH:
            return
        if self._tapped != self._was_tapped:
            self._switch_packets()
        if self._tapped:
            # picamera2 encoded the main stream itself: its packets carry their own numbers,
            # matched to frames (for the sidecar's boxes) by time.
            self._recent.append((result.frame.ts, result.frame.seq))
            packets = self.tap.drain()
        else:
            image = self._image(result)
            encoder = self._encoder_for(image)
            packets = encoder.encode(image, result.frame.ts, result.frame.seq, key=self._force_key)
            self._force_key = False
        for packet in packets:
            self.ring.add(packet)
        self._feed(result.frame.ts - WRITE_LAG_S)

    def close(self) -> None:
        if self.encoder is not None and not self._tapped:
            for packet in self.encoder.flush():
                self.ring.add(packet)
        if self._tapped:  # what picamera2's encoder gave before the camera was released
            for packet in self.tap.drain():
                self.ring.add(packet)
        for note in self.notes.take_all():
            self._apply(note)
        if self.writer is not None:  # the run ended mid-clip: keep what was recorded
            self._finish(self.writer, (), float("inf"))

    # -- internals ------------------------------------------------------------------------
    def _encoder_for(self, image: np.ndarray) -> FrameEncoder:
        h, w = image.shape[:2]
        if self.encoder is None or (w - w % 2, h - h % 2) != self.encoder.size:
            if self.encoder is not None:
                log.info("clips: the frames are now %dx%d: new encoder", w, h)
                if self.writer is not None:
                    self._finish(self.writer, (), float("inf"))
                self.ring = PacketRing(self.ring.seconds, self.ring.max_bytes)
            s = self.settings
            self.encoder = FrameEncoder(
                w,
                h,
                s.fps,
                codec=s.codec,
                preset=s.preset,
                bitrate_kbps=s.bitrate_kbps,
                keyframe_interval=s.keyframe_interval,
            )
        return self.encoder

    @property
    def _tapped(self) -> bool:
        # Once the camera's packets have come, they are the one source of packets (the camera
        # is away between a loss and its reopening: no frames come then), until the tap says
        # they stopped (a reconnected stream that cannot be remuxed).
        return self.tap is not None and self.tap.encoder_name is not None

    def _switch_packets(self) -> None:
        # The packets now come from the tap or from our encoder instead of the other: the two
        # number them apart, so what is held of the other (ring, clip) cannot go on.
        self._was_tapped = self._tapped
        if self.writer is not None:
            self._finish(self.writer, (), float("inf"))
        self.ring = PacketRing(self.ring.seconds, self.ring.max_bytes)
        self.encoder, self._cursor = None, -1

    def _size(self) -> Optional[Tuple[int, int]]:
        if self._tapped:
            return self.tap.size
        return self.encoder.size if self.encoder is not None else None

    def _frame_seq(self, t: float) -> Optional[int]:
        # The frame the pipeline saw nearest to a picamera2 packet's time.
        if not self._recent:
            return None
        ts, seq = min(self._recent, key=lambda r: abs(r[0] - t))
        return seq if abs(ts - t) < 0.5 else None

    def _feed(self, until: float) -> None:
        # Give the writer the ring's packets after the last it got, up to `until`.
        for packet in self.ring.after(self._cursor, until):
            if self.writer is None:
                return
            self._cursor = packet.seq
            if self._tapped:
                seq = self._frame_seq(packet.t)
                self._write(packet, self._boxes.get(seq, ()) if seq is not None else (), seq)
            else:
                self._write(packet, self._boxes.pop(packet.seq, ()), None)  # noqa: B023 - called at once

    def _apply(self, note: ClipNote) -> None:
        if note.boxes and self.writer is not None:
            self._boxes[note.seq] = note.boxes
        for action in note.actions:
            if isinstance(action, CloseClip):
                if self.writer is not None and self.writer.name == action.name:
                    self._finish(self.writer, action.events, action.end)
            elif isinstance(action, OpenClip):
                self._open(action)
        if self.writer is not None:
            # Frames not yet written (they wait WRITE_LAG_S): an object that started now is
            # boxed in them from its first sighting.
            for seq, box in note.earlier:
                self._boxes[seq] = self._boxes.get(seq, ()) + (box,)

    def _open(self, action: OpenClip) -> None:
        if self.writer is not None:  # never two at once: the plan closes before it opens
            self._finish(self.writer, (), float("inf"))
        size = self._size()
        if size is None:
            return  # no frame yet: nothing to record
        width, height = size
        try:
            self.writer = ClipWriter(self.settings.folder, action.name, action.start, width, height)
        except DISK_ERRORS as exc:
            self._disk_failed(exc)
            return
        if action.fresh and not self._tapped:
            # A split: the next frame is made a keyframe and starts the clip (what the ring
            # holds before it belongs to the clip that just ended).
            self._force_key = True
            newest = self.ring.since(float("inf"))
            self._cursor = newest[-1].seq if newest else -1
            return
        head = self.ring.since(action.start)
        self._cursor = head[0].seq - 1 if head else -1

    def _finish(self, writer: ClipWriter, events, end: float) -> None:
        self._feed(end)  # what it is still owed, up to its end
        self.writer = None
        self._boxes.clear()
        encoder = (
            self.tap.encoder_name
            if self._tapped
            else f"{self.settings.codec} {self.settings.preset}"
            if self.settings.codec == "libx264"
            else self.settings.codec
        )
        try:
            path = writer.close(events, {"encoder": encoder})
        except DISK_ERRORS as exc:
            writer.abort()
            self._disk_failed(exc)
            return
        if path is None:
            return
        self.written += 1
        if not self._disk_ok:
            log.info("clips: writing to %s again", self.settings.folder)
        self._disk_ok = True
        log.info("clip %s: %.1f s, %d kB", path.name, writer.seconds, path.stat().st_size // 1024)
        prune(self.settings.folder, self.settings.max_mb, self.settings.max_days)

    def _write(self, packet: EncodedPacket, boxes, seq: Optional[int]) -> None:
        writer = self.writer
        if writer is None:
            return
        try:
            writer.add(packet, boxes, seq=seq)
        except DISK_ERRORS as exc:
            self.writer = None
            writer.abort()
            self._disk_failed(exc)

    def _disk_failed(self, exc: BaseException) -> None:
        self.failed += 1
        if self._disk_ok:
            reason = getattr(exc, "strerror", None) or str(exc)
            log.error(
                "clips: cannot write to %s (%s): this clip is lost, detection goes on; "
                "the next clip tries again",
                self.settings.folder,
                reason,
            )
        self._disk_ok = False

    def _thumbnails(self, result: FrameResult) -> None:
        # The first ended object's snapshot is the clip's thumbnail (written at once: the
        # clip itself may still be recording its post-roll).
        for ev in result.events:
            if not (isinstance(ev, Event) and ev.clip and ev.snapshot is not None):
                continue
            path = self.settings.folder / (ev.clip[: -len(".mp4")] + ".jpg")
            if path.exists():
                continue
            try:
                write_atomic(path, ev.snapshot.full)
            except OSError as exc:
                self._disk_failed(exc)
