"""Local sinks: JSON lines or a human summary on stdout, annotated video or JPEGs, snapshots.

Every sink is a `Sink`; each runs on its own thread in the pipeline, so a slow one never
stalls inference.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO, Tuple

import cv2
import numpy as np

from .annotate import Annotate, encode_jpeg
from .datatypes import Event, FrameResult, FrameState, ZoneChange
from .errors import EdgecamError
from .files import make_dir, write_atomic
from .stages import Sink

log = logging.getLogger(__name__)


class JsonLinesSink(Sink):
    """One JSON object per processed frame (and per event) on a text stream: the `--json` contract."""

    name = "json"
    takes_flush = True

    def __init__(self, stream: TextIO):
        self.stream = stream

    def handle(self, result: FrameResult) -> None:
        lines = (
            [] if result.state is FrameState.FLUSH else [json.dumps(result.to_json(), separators=(",", ":"))]
        )
        # Events and zone counts; per-label counts and occupancy are MQTT's retained states (a
        # frame line's detections already say what is in view).
        lines += [
            json.dumps(e.to_json(), separators=(",", ":"))
            for e in result.events
            if isinstance(e, (Event, ZoneChange))
        ]
        if not lines:
            return
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()


class SummarySink(Sink):
    """A short human line per frame of a file source (`frame 3 pets.jpg: dog 0.81 | 12.1 ms`)."""

    name = "summary"

    def __init__(self, stream: TextIO):
        self.stream = stream

    def handle(self, result: FrameResult) -> None:
        f = result.frame
        found = ", ".join(f"{d.label} {d.score:.2f}" for d in result.detections) or "nothing"
        self.stream.write(
            f"frame {f.seq} {os.path.basename(f.source)}: {found} | {result.inference_ms:.1f} ms\n"
        )
        self.stream.flush()


class VideoFileSink(Sink):
    """Annotated frames into a video file (mp4v); frames of another size are resized to the first."""

    name = "video"

    FOURCC = "mp4v"

    def __init__(self, path: Path, fps: float, annotate: Annotate):
        self.path, self.fps, self.annotate = path, fps, annotate
        self.writer: Optional[cv2.VideoWriter] = None
        self.size: Optional[Tuple[int, int]] = None
        # The writer can only be opened once the first frame gives its size, after the other
        # sinks have printed that frame: what can be checked without it is checked here, so a
        # bad --output ends the run before anything is written.
        if not path.parent.exists():
            raise EdgecamError(f"output folder {path.parent} does not exist: create it first")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise EdgecamError(f"cannot write video {path}: no permission to write in {path.parent}")
        if not self._can_encode(path.suffix, fps):
            raise EdgecamError(self._unwritable())

    @classmethod
    def _can_encode(cls, suffix: str, fps: float) -> bool:
        """Whether OpenCV opens a writer for this file name ending (its container), tried on a
        throwaway file so the named one is not touched."""
        with tempfile.TemporaryDirectory(prefix="edgecam-") as tmp:
            probe = cv2.VideoWriter(
                os.path.join(tmp, f"probe{suffix}"), cv2.VideoWriter.fourcc(*cls.FOURCC), fps, (16, 16)
            )
            try:
                return probe.isOpened()
            finally:
                probe.release()

    def _unwritable(self) -> str:
        return f"cannot write video {self.path}: use a .mp4, .mkv or .avi name (or DIR/ for annotated JPEGs)"

    def handle(self, result: FrameResult) -> None:
        image = self.annotate(result)
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter.fourcc(*self.FOURCC)
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise EdgecamError(self._unwritable())
        assert self.size is not None  # set with the writer
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


class JpegDirSink(Sink):
    """Each annotated frame as DIR/000123.jpg (the frame's sequence number)."""

    name = "jpegs"

    def __init__(self, folder: Path, annotate: Annotate):
        self.folder, self.annotate = folder, annotate
        make_dir(folder)

    def handle(self, result: FrameResult) -> None:
        _write_jpeg(self.folder / f"{result.frame.seq:06d}.jpg", self.annotate(result))


class SnapshotSink(Sink):
    """A JPEG of the annotated frame when a watched label is seen, at most one per `interval` s."""

    name = "snapshots"

    def __init__(
        self,
        folder: Path,
        watch: Sequence[str],
        interval: float,
        annotate: Annotate,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.folder, self.watch, self.interval = folder, set(watch), interval
        self.annotate, self.clock = annotate, clock
        self._last: Optional[float] = None
        make_dir(folder)

    def handle(self, result: FrameResult) -> None:
        seen = sorted({d.label for d in result.detections if d.label in self.watch})
        now = self.clock()
        if not seen or (self._last is not None and now - self._last < self.interval):
            return
        self._last = now
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(result.frame.ts))
        name = f"{stamp}-{result.frame.seq:06d}-{'+'.join(seen)}.jpg"
        _write_jpeg(self.folder / name, self.annotate(result))


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    try:
        write_atomic(path, encode_jpeg(image))
    except ValueError:
        log.warning("could not encode %s", path)


def output_sink(target: str, fps: float, annotate: Annotate) -> Sink:
    """`--output`: a folder (trailing / or existing dir) gets JPEGs, anything else a video file."""
    path = Path(target).expanduser()
    if target.endswith(("/", os.sep)) or path.is_dir():
        return JpegDirSink(path, annotate)
    return VideoFileSink(path, fps, annotate)
