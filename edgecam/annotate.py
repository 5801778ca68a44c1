"""Draw detections (box, label, score) and an fps / inference-time overlay on a frame."""

from __future__ import annotations

import functools
import threading
from typing import Callable, Iterable, Optional, Tuple

import cv2
import numpy as np

from .datatypes import Detection, FrameResult

_FONT = cv2.FONT_HERSHEY_SIMPLEX

# What sinks are given to get a result's annotated image (an Annotator, shared by them all).
Annotate = Callable[[FrameResult], np.ndarray]


@functools.lru_cache(maxsize=1024)
def colour_for(class_id: int) -> Tuple[int, int, int]:
    """A stable, well-separated BGR colour per class id."""
    hue = (class_id * 47) % 180
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw(
    image: np.ndarray, detections: Iterable[Detection], overlay: Optional[str] = None, copy: bool = True
) -> np.ndarray:
    """The image with each detection's box and `label score`, and `overlay` text top-left."""
    out = image.copy() if copy else image
    h, w = out.shape[:2]
    scale = max(0.4, min(1.2, w / 1280 * 0.8))
    thick = max(1, int(round(w / 640)))
    for det in detections:
        x1, y1, x2, y2 = det.bbox.to_pixels(w, h)
        colour = colour_for(det.class_id)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick + 1)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else y1 + th + 4
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base), colour, cv2.FILLED)
        cv2.putText(out, text, (x1 + 2, ty), _FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
    if overlay:
        # Bottom-left: labels of boxes touching the top edge stay readable.
        (tw, th), base = cv2.getTextSize(overlay, _FONT, scale, thick)
        top = h - th - base - 10
        cv2.rectangle(out, (0, top), (tw + 10, h), (0, 0, 0), cv2.FILLED)
        cv2.putText(out, overlay, (5, h - base - 5), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def overlay_text(fps: float, inference_ms: float) -> str:
    """The standard overlay line: processed frames per second and this frame's inference time."""
    return f"{fps:5.1f} fps | inference {inference_ms:5.1f} ms"


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class Annotator:
    """Draws each result at most once, however many sinks ask for it (thread-safe).

    `fps` is a callable giving the current processed frame rate for the overlay.
    """

    def __init__(self, fps=lambda: 0.0):
        self._fps = fps
        self._lock = threading.Lock()

    def __call__(self, result) -> np.ndarray:
        """The annotated image of a FrameResult, drawn on first use and kept on the result."""
        with self._lock:
            if result.annotated is None:
                result.annotated = draw(
                    result.frame.image, result.detections, overlay_text(self._fps(), result.inference_ms)
                )
            return result.annotated
