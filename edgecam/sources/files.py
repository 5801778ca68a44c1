"""File sources: one image or a folder of images, and video files; they end the run when they
run out (or repeat with `loop`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator, List, Set

import cv2

from ..datatypes import Frame
from ..errors import EdgecamError
from .base import IMAGE_SUFFIXES, Source

log = logging.getLogger("edgecam.sources")


def list_image_files(folder: Path) -> List[Path]:
    """Image files in a folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageSource(Source):
    """One image file or a folder of images (sorted by name).

    A folder's unreadable images are skipped with a warning, once per file however often the
    folder loops; a single named image that cannot be decoded is bad input, reported at open.
    """

    def __init__(self, path: Path, loop: bool = False):
        super().__init__()
        self.path, self.loop, self.name = path, loop, str(path)
        self._skipped: Set[Path] = set()
        if path.is_dir():
            self.files = list_image_files(path)
            if not self.files:
                raise EdgecamError(f"no images in folder {path} "
                                   f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            self.files = [path]
            # Decoded once up front so a bad file fails before the run starts, not as 0 frames.
            if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
                raise EdgecamError(f"cannot read image {path}: OpenCV cannot decode it (corrupt, "
                                   "truncated or not an image): give a JPEG, PNG, BMP, WebP, TIFF, "
                                   "PPM or PGM file, or a folder")

    def frames(self) -> Iterator[Frame]:
        while not self.closed:
            readable = 0
            for p in self.files:
                if self.closed:
                    return
                image = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if image is None:
                    if p not in self._skipped:
                        self._skipped.add(p)
                        log.warning("skipping unreadable image %s", p)
                    continue
                readable += 1
                yield self._frame(image, name=str(p))
            if not self.loop or not readable:
                return


DECODE_THREADS = 1


class VideoSource(Source):
    """A video file read frame by frame through OpenCV; `realtime` paces it at its own fps."""

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
        while not self.closed:
            cap = self._open()
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            start, produced, bad = time.monotonic(), 0, 0
            try:
                while not self.closed:
                    ok, image = cap.read()
                    if not ok or image is None:
                        pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)
                        bad += 1
                        if total and pos < total - 1 and bad < self.MAX_BAD_FRAMES:
                            log.warning("skipping unreadable frame %d of %s", pos, self.path)
                            cap.set(cv2.CAP_PROP_POS_FRAMES, pos + 1)
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
                    yield self._frame(image)
            finally:
                cap.release()
            if not self.loop or not produced:
                return
