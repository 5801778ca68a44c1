"""Motion gating: run the detector only when something moves, while objects are tracked,
or every `keepalive` seconds, because on a Pi the cheapest inference is the one not run.

Motion is measured on a small grey copy of the frame against a running-average background
(cv2.accumulateWeighted): pixels differing by more than `threshold` grey levels are dilated
into blobs, and the frame moves when the blobs cover at least `min_area` of it. The blobs'
bounding boxes say where (`Motion.boxes`): `[detect] regions = motion` looks there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import cv2
import numpy as np

from .datatypes import BBox, Frame
from .stats import GateStats


@dataclass(frozen=True)
class MotionOptions:
    """Motion detector and gate settings."""

    threshold: int = 25  # grey levels
    min_area: float = 0.002  # fraction of the frame covered by moving blobs
    keepalive: float = 10.0  # seconds between inferences when nothing moves
    width: int = 160  # pixels of the grey copy
    alpha: float = 0.05  # how fast the background learns (per frame)


@dataclass(frozen=True)
class Motion:
    """What moved in one frame: the moving fraction of it (0..1) and the moving blobs'
    bounding boxes, normalised to the frame."""

    area: float
    boxes: Tuple[BBox, ...] = ()


class MotionDetector:
    """Where and how much of the frame moved, against a running background of earlier frames.
    Thread-safe (the background is updated under a lock, one frame at a time)."""

    def __init__(self, options: MotionOptions = MotionOptions()):
        self.options = options
        self._background: Optional[np.ndarray] = None
        self._kernel = np.ones((3, 3), np.uint8)
        self._lock = threading.Lock()

    def _grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        width = min(self.options.width, w)
        small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def measure(self, image: np.ndarray) -> float:
        """The moving fraction of `image` (0..1); the first frame only seeds the background."""
        return self.detect(image).area

    def detect(self, image: np.ndarray) -> Motion:
        """The motion in `image`; the first frame only seeds the background (no motion)."""
        grey = self._grey(image)
        with self._lock:
            if self._background is None or self._background.shape != grey.shape:
                self._background = grey.astype(np.float32)
                return Motion(0.0)
            diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
            cv2.accumulateWeighted(grey, self._background, self.options.alpha)
        _, moved = cv2.threshold(diff, self.options.threshold, 255, cv2.THRESH_BINARY)
        blobs = cv2.dilate(moved, self._kernel, iterations=2)
        contours, _ = cv2.findContours(blobs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        h, w = grey.shape
        area = sum(cv2.contourArea(c) for c in contours)
        return Motion(float(area) / float(w * h), _tight_boxes(moved, blobs, w, h))


def _tight_boxes(moved: np.ndarray, blobs: np.ndarray, w: int, h: int) -> Tuple[BBox, ...]:
    """The boxes of the moving pixels of each blob (the dilation joins a blob's pieces but
    would widen its box by 4 grey pixels, a fifth of a small object's width at 160 px)."""
    count, labels = cv2.connectedComponents(blobs)
    ys, xs = np.nonzero(moved)
    which = labels[ys, xs]
    boxes = []
    for k in range(1, count):
        inside = which == k
        if inside.any():
            bx, by = xs[inside], ys[inside]
            boxes.append(
                BBox(
                    float(bx.min()) / w, float(by.min()) / h, float(bx.max() + 1) / w, float(by.max() + 1) / h
                )
            )
    return tuple(boxes)


class MotionGate:
    """The pipeline's `gate(frame) -> bool`: True runs inference on the frame.

    `active()` says whether objects are being tracked (then every frame is inferred, so tracks
    end on evidence, not on skipped frames). Time is the frames' capture time. Thread-safe:
    with several workers the gate is called from each.
    """

    def __init__(self, options: MotionOptions = MotionOptions(), active: Callable[[], bool] = lambda: False):
        self.options = options
        self._active = active
        self._detector = MotionDetector(options)
        self._last_inference: Optional[float] = None
        self._lock = threading.Lock()
        self.stats = GateStats()
        self.last_area = 0.0

    def __call__(self, frame: Frame, motion: Optional[Motion] = None) -> bool:
        """Whether to infer on `frame`; `motion` is its motion when measured already (by the
        pipeline's shared MotionDetector), else the gate measures it."""
        with self._lock:
            self.stats.frames += 1
            if motion is None:
                motion = self._detector.detect(frame.image)
            self.last_area = area = motion.area
            if area >= self.options.min_area:
                reason = "motion"
            elif self._active():
                reason = "tracking"
            elif self._last_inference is None or frame.mono - self._last_inference >= self.options.keepalive:
                reason = "keepalive"
            else:
                self.stats.skipped += 1
                return False
            setattr(self.stats, reason, getattr(self.stats, reason) + 1)
            self.stats.inferred += 1
            self._last_inference = frame.mono  # monotonic: the wall clock jumps at NTP sync
            return True


def gate_from_config(motion_cfg, active: Callable[[], bool] = lambda: False) -> MotionGate:
    """The MotionGate for a `[motion]` config section; `active` says whether objects are tracked."""
    return MotionGate(
        MotionOptions(motion_cfg.threshold, motion_cfg.min_area, motion_cfg.keepalive, motion_cfg.width),
        active,
    )
