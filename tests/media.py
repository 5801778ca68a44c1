"""Test media made from the real photos in ../shared/images (videos are built, never stored)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

import cv2
import numpy as np


def pan_frames(image: np.ndarray, n: int, size: Tuple[int, int] = (640, 480)) -> list:
    """`n` frames of `size` panning a window across `image` (scaled so the window fits)."""
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0]) * 1.25
    big = cv2.resize(image, None, fx=scale, fy=scale)
    max_x, max_y = big.shape[1] - w, big.shape[0] - h
    frames = []
    for i in range(n):
        t = i / max(1, n - 1)
        x, y = int(max_x * t), int(max_y * t)
        frames.append(np.ascontiguousarray(big[y:y + h, x:x + w]))
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 30.0,
                fourcc: str = "mp4v") -> Path:
    """Write frames as a video (mp4v, or e.g. MJPG for an .avi) and return its path."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def frame_count(path: Path) -> int:
    """Frames in a video, counted by decoding it."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n
