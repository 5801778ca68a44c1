"""What every source shares: the spec of what to open, the Source interface, and which file
suffixes and URL schemes name images and streams."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple

import numpy as np

from ..datatypes import Frame, SensorDetections

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
# The streams whose H.264 packets clips record as they come (sources.stream).
REMUX_SCHEMES = ("rtsp://", "rtsps://")


@dataclass(frozen=True)
class SourceSpec:
    """What to open: a URI and the capture settings that apply to it."""

    uri: str = "auto"
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    loop: bool = False
    stall_timeout: float = 5.0
    realtime: bool = False
    model_input_size: Optional[Tuple[int, int]] = None


class Source:
    """Base of all sources: `frames()` yields Frames until the source ends; `close()` stops it."""

    name = "source"
    live = False
    # True while a live source waits for its camera or stream to come back (the watchdog
    # keeps being fed then, though no frames arrive).
    reconnecting = False
    # Told when frames stop (False) or come back (True); only live sources ever call it.
    on_status: Optional[Callable[[bool], None]] = None
    # The rate the frames were recorded at, when the source knows it (a video file's own);
    # None where it is only what was asked for (a camera's [source] fps) or there is none.
    fps: Optional[float] = None

    def __init__(self):
        self._closed = threading.Event()
        self._seq = 0

    def frames(self) -> Iterator[Frame]:
        """Frames in capture order, each stamped with its capture time."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop producing frames (safe to call from another thread, and twice)."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed.is_set()

    def _frame(
        self,
        image: np.ndarray,
        model_input: Optional[np.ndarray] = None,
        detected: Optional[SensorDetections] = None,
        name: Optional[str] = None,
        ts: Optional[float] = None,
    ) -> Frame:
        """The next Frame; `ts` is the source's own time when it has one (a file), else now."""
        f = Frame(
            self._seq,
            time.time() if ts is None else ts,
            time.monotonic(),
            image,
            name or self.name,
            model_input,
            detected,
        )
        self._seq += 1
        return f
