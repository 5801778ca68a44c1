"""File sources: one image or a folder of images, and video files; they end the run when they
run out (or repeat with `loop`)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Set, Tuple, TypeVar

import cv2
import numpy as np

from ..datatypes import Frame
from ..errors import EdgecamError
from .base import IMAGE_SUFFIXES, Source

log = logging.getLogger("edgecam.sources")


# What libjpeg prints when a file ends before its image does. It fills the rest with grey and
# OpenCV returns that as a whole image; its other warnings are about damage inside an image
# that still decodes whole.
TRUNCATED_JPEG = "Premature end of JPEG file"

T = TypeVar("T")


def read_image(path: Path) -> Tuple[Optional[np.ndarray], bool]:
    """(BGR image or None when OpenCV cannot decode it, whether the file is truncated).

    The image libraries (libjpeg, libpng) print their warnings straight to the process's
    stderr, past OpenCV's log level: what they say is caught here, and logged at debug level
    only (`--log-level debug` shows it).
    """
    image, said = _stderr_of(lambda: cv2.imread(str(path), cv2.IMREAD_COLOR))
    if said:
        log.debug("decoding %s: %s", path, said.strip())
    return image, TRUNCATED_JPEG in said


def _stderr_of(call: Callable[[], T]) -> Tuple[T, str]:
    """call()'s result and what native code wrote to fd 2 meanwhile. The log handlers are held
    for that time, so no log line of another thread lands in the capture."""
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.acquire()
    try:
        sys.stderr.flush()
        with tempfile.TemporaryFile() as caught:
            saved = os.dup(2)
            os.dup2(caught.fileno(), 2)
            try:
                result = call()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            caught.seek(0)
            return result, caught.read().decode("utf-8", "replace")
    finally:
        for handler in reversed(handlers):
            handler.release()


def list_image_files(folder: Path) -> List[Path]:
    """Image files in a folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageSource(Source):
    """One image file or a folder of images (sorted by name).

    A folder's unreadable images are skipped with a warning, once per file however often the
    folder loops; a single named image that cannot be decoded is bad input, reported at open.
    A truncated image counts as unreadable: its missing part would reach the model as grey,
    where nothing can be detected, and a file still being written into a watched folder is
    read whole on a later pass instead.
    """

    def __init__(self, path: Path, loop: bool = False):
        super().__init__()
        self.path, self.loop, self.name = path, loop, str(path)
        self._skipped: Set[Path] = set()
        if path.is_dir():
            self.files = list_image_files(path)
            if not self.files:
                raise EdgecamError(
                    f"no images in folder {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
        else:
            self.files = [path]
            # Decoded once up front so a bad file fails before the run starts, not as 0 frames.
            image, truncated = read_image(path)
            if truncated:
                raise EdgecamError(
                    f"cannot read image {path}: it is truncated (the file ends "
                    "before the image does): give the whole file"
                )
            if image is None:
                raise EdgecamError(
                    f"cannot read image {path}: OpenCV cannot decode it (corrupt, "
                    "truncated or not an image): give a JPEG, PNG, BMP, WebP, TIFF, "
                    "PPM or PGM file, or a folder"
                )

    def frames(self) -> Iterator[Frame]:
        while not self.closed:
            readable = 0
            for p in self.files:
                if self.closed:
                    return
                image, truncated = read_image(p)
                if image is None or truncated:
                    if p not in self._skipped:
                        self._skipped.add(p)
                        log.warning("skipping %s image %s", "truncated" if truncated else "unreadable", p)
                    continue
                readable += 1
                yield self._frame(image, name=str(p))
            if not self.loop or not readable:
                return


DECODE_THREADS = 1


class VideoSource(Source):
    """A video file read frame by frame through OpenCV; `realtime` paces it at its own fps.

    Frames carry the file's time: the wall time the file was opened plus frame index / fps
    (a loop goes on from where the last pass ended), so event times and durations are those
    of the video however fast it is processed.
    """

    MAX_BAD_FRAMES = 25
    fps: float  # the file's own rate (30 when it does not say)

    def __init__(self, path: Path, loop: bool = False, realtime: bool = False):
        super().__init__()
        self.path, self.loop, self.realtime, self.name = path, loop, realtime, str(path)
        self.live = realtime
        cap = self._open()
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        cap.release()

    def _open(self):
        # One decoder thread: FFmpeg's default frame threads spend 50 % more CPU per frame
        # (measured 0.63 vs 0.41 ms at 640x480), CPU the interpreter needs, and one thread
        # still decodes far faster than any model here infers.
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, DECODE_THREADS])
        if not cap.isOpened():
            raise EdgecamError(f"cannot open video file {self.path}: not a video OpenCV can decode")
        return cap

    def frames(self) -> Iterator[Frame]:
        origin = time.time()
        while not self.closed:
            cap = self._open()
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            start, produced, bad, index = time.monotonic(), 0, 0, 0  # index: frames read or skipped
            try:
                while not self.closed:
                    ok, image = cap.read()
                    if not ok or image is None:
                        pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)
                        bad += 1
                        if total and pos < total - 1 and bad < self.MAX_BAD_FRAMES:
                            log.warning("skipping unreadable frame %d of %s", pos, self.path)
                            cap.set(cv2.CAP_PROP_POS_FRAMES, pos + 1)
                            index += 1
                            continue
                        break
                    bad = 0
                    if self.realtime:
                        # A wall clock at the file's fps: what a live camera would deliver.
                        due = start + produced / self.fps
                        delay = due - time.monotonic()
                        if delay > 0:
                            self._closed.wait(delay)
                    produced += 1
                    index += 1
                    yield self._frame(image, ts=origin + (index - 1) / self.fps)
            finally:
                cap.release()
            origin += index / self.fps
            if not self.loop or not produced:
                return
