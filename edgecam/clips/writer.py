"""One clip file: H.264 packets muxed into MP4 (`+faststart`) under a temporary name, its
JSON sidecar, and the rename that makes it complete.

Packet times are relative to the clip's start. A pre-roll starts on the keyframe before the
start, so its first packets come before 0: the MP4 muxer records that in an edit list, and
players (browsers, FFmpeg, PyAV) start showing at 0, the asked-for start, exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..files import write_atomic
from .encoder import TIME_BASE
from .packets import EncodedPacket
from .store import partial_path

SIDECAR_VERSION = 1


class ClipWriter:
    """Writes clip `name` in `folder`, starting at `start` (unix s); `close()` completes it.

    Raises OSError (disk full, read-only, gone) from any method; `abort()` then deletes the
    temporary file.
    """

    def __init__(self, folder: Path, name: str, start: float, width: int, height: int):
        import av

        self.folder, self.name, self.start = folder, name, start
        self.width, self.height = width, height
        self.part = partial_path(folder, name)
        self.path = folder / f"{name}.mp4"
        self._av = av
        self._container = av.open(str(self.part), "w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_mux_stream("h264", width=width, height=height)
        self._stream.time_base = TIME_BASE
        self._last_pts: Optional[int] = None
        self._gap = 100
        self.first_t: Optional[float] = None  # time of the first frame at or after the start
        self.last_t: Optional[float] = None
        self.frames: List[dict] = []
        self.packets = 0

    def add(self, packet: EncodedPacket, boxes: Sequence[dict] = (), seq: Optional[int] = None) -> None:
        """Mux one packet (the first must be a keyframe; earlier ones are skipped) and note
        the frame's boxes and number (`seq`, default the packet's) for the sidecar."""
        if self._last_pts is None and not packet.key:
            return
        pts = round((packet.t - self.start) * 1000)
        if self._last_pts is not None:
            if pts <= self._last_pts:
                pts = self._last_pts + 1
            self._gap = pts - self._last_pts
        av_packet = self._av.Packet(packet.data)
        av_packet.stream = self._stream
        av_packet.pts = av_packet.dts = pts
        av_packet.duration = self._gap
        av_packet.time_base = TIME_BASE
        if packet.key:
            av_packet.is_keyframe = True
        self._container.mux(av_packet)
        self._last_pts = pts
        self.packets += 1
        if pts >= 0:
            if self.first_t is None:
                self.first_t = packet.t
            self.last_t = packet.t
            self.frames.append(
                {
                    "t": round(packet.t - self.start, 3),
                    "seq": packet.seq if seq is None else seq,
                    "boxes": list(boxes),
                }
            )

    @property
    def seconds(self) -> float:
        """The clip's length so far: from its start to the end of its last frame."""
        if self.last_t is None:
            return 0.0
        return round(self.last_t - self.start + self._gap / 1000.0, 3)

    def close(self, events: Sequence[dict], extra: Optional[Dict] = None) -> Optional[Path]:
        """Finish the file, write the sidecar, then rename the clip to its final name; returns
        it, or None (file deleted) when no frame fell inside the clip."""
        self._container.close()
        if self.first_t is None:
            self._remove_part()
            return None
        sidecar = {
            "v": SIDECAR_VERSION,
            "clip": self.path.name,
            "start": round(self.start, 3),
            "seconds": self.seconds,
            "width": self.width,
            "height": self.height,
            "events": list(events),
            "frames": self.frames,
            **(extra or {}),
        }
        write_atomic(self.folder / f"{self.name}.json", json.dumps(sidecar, separators=(",", ":")).encode())
        os.replace(self.part, self.path)
        return self.path

    def abort(self) -> None:
        """Give the clip up: close what can be closed and delete the temporary file."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - a broken file is deleted either way
            pass
        self._remove_part()

    def _remove_part(self) -> None:
        try:
            self.part.unlink()
        except OSError:
            pass
