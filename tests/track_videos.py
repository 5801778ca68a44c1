"""Test videos for tracking, made with OpenCV from the real photos in ../shared/images.

Objects are crops of real photos (the cat of cat_720p.jpg, the same cat mirrored) moved
across a static background (kite_and_cold.jpg blurred until the detector finds nothing in it).
Also used by scripts/bench_motion.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

import media
from conftest import IMAGES

CAT_BOX = (90, 94, 919, 704)  # where the detector finds the cat in cat_720p.jpg (x1, y1, x2, y2)


def background(width: int, height: int) -> np.ndarray:
    """A static, object-free scene: the kite photo blurred beyond recognition."""
    img = cv2.resize(cv2.imread(str(IMAGES / "kite_and_cold.jpg")), (width, height))
    return cv2.GaussianBlur(img, (0, 0), 25)


def crop(name: str, box: Tuple[int, int, int, int], scale: float) -> np.ndarray:
    """A crop of a shared photo, resized by `scale`."""
    x1, y1, x2, y2 = box
    img = cv2.imread(str(IMAGES / name))[y1:y2, x1:x2]
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
    """Frames into an MJPG .avi (a container every OpenCV build can write and read)."""
    return media.write_video(path, frames, fps, fourcc="MJPG")


def paste(frame: np.ndarray, obj: np.ndarray, x: int, y: int) -> None:
    """Put `obj` into `frame` with its top-left corner at (x, y) (must fit)."""
    frame[y:y + obj.shape[0], x:x + obj.shape[1]] = obj


def cat_frames(still_before: int = 5, moving: int = 30, still_after: int = 20,
               size=(640, 360)) -> List[np.ndarray]:
    """The cat walks left to right along the bottom of an empty scene, then is gone."""
    w, h = size
    bg = background(w, h)
    cat = crop("cat_720p.jpg", CAT_BOX, 200 / (CAT_BOX[2] - CAT_BOX[0]))
    frames = [bg.copy() for _ in range(still_before)]
    for i in range(moving):
        f = bg.copy()
        paste(f, cat, int(i * (w - cat.shape[1]) / (moving - 1)), h - cat.shape[0] - 10)
        frames.append(f)
    return frames + [bg.copy() for _ in range(still_after)]


def crossing_frames(moving: int = 40, still_after: int = 20, size=(640, 480)) -> List[np.ndarray]:
    """Two cats walking in opposite directions (the second one mirrored), the first passing in
    front of the second: at the crossing the back cat's upper part is hidden and their boxes
    overlap (IoU ~0.3), so a matcher that only looks at overlap could swap them."""
    w, h = size
    bg = background(w, h)
    a = crop("cat_720p.jpg", CAT_BOX, 220 / (CAT_BOX[2] - CAT_BOX[0]))
    b = a[:, ::-1].copy()
    frames = []
    for i in range(moving):
        f = bg.copy()
        xa = int(10 + i * (w - 20 - a.shape[1]) / (moving - 1))
        xb = int(w - 10 - b.shape[1] - i * (w - 20 - b.shape[1]) / (moving - 1))
        paste(f, b, xb, 270)
        paste(f, a, xa, 130)
        frames.append(f)
    return frames + [bg.copy() for _ in range(still_after)]


def static_frames(n: int, size=(640, 360)) -> List[np.ndarray]:
    """An empty scene that never changes."""
    bg = background(*size)
    return [bg.copy() for _ in range(n)]
