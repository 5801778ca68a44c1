"""The latest annotated JPEG, shared by every preview viewer.

A frame is drawn and JPEG-encoded at most once, whatever the number of viewers, and only
while someone watches (or asks for a snapshot), at most `max_fps` times a second. The
encode runs on the caller's thread (the web sink's pipeline thread, or the server's encode
worker for a snapshot), never on the server's event loop; listeners are told when a new
JPEG (or the close) happens. Viewers always take the newest JPEG: one that falls behind
skips frames instead of queueing them.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..annotate import encode_jpeg
from ..datatypes import FrameResult

Annotate = Callable[[FrameResult], np.ndarray]


class JpegHub:
    """Latest result in, latest JPEG out; counts viewers and caps them at `max_viewers`."""

    def __init__(self, annotate: Annotate, max_fps: float, max_viewers: int, quality: int = 80,
                 clock: Callable[[], float] = time.monotonic):
        self._annotate, self._quality, self._clock = annotate, quality, clock
        self._interval = 1.0 / max_fps
        self.max_viewers = max_viewers
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._listeners: List[Callable[[], None]] = []
        self._result: Optional[FrameResult] = None
        self._jpeg: Optional[bytes] = None
        self._jpeg_of: Optional[FrameResult] = None
        self._seq = 0
        self._next_due = 0.0
        self._viewers = 0
        self._closed = False
        self.encoded = 0

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every new JPEG and on close, from the thread that made it
        (so it must only hand the news over, e.g. with loop.call_soon_threadsafe)."""
        self._listeners.append(callback)

    # -- producer (the web sink's pipeline thread) -------------------------------------------
    def offer(self, result: FrameResult) -> None:
        """Make `result` the latest frame; encode it now if someone watches and it is due."""
        now = self._clock()
        with self._lock:
            self._result = result
            due = self._viewers > 0 and now >= self._next_due
            if due:
                # Keep a steady grid while on time; restart it after an idle spell, so a
                # late frame does not cause a burst.
                late = now - self._next_due
                self._next_due = (self._next_due if late < self._interval else now) + self._interval
        if due:
            self._encode(result)

    def _encode(self, result: FrameResult) -> bytes:
        with self._encode_lock:  # two callers wanting the same frame: one encodes, both get it
            if self._jpeg_of is result and self._jpeg is not None:
                return self._jpeg
            data = encode_jpeg(self._annotate(result), self._quality)
            with self._lock:
                self._jpeg, self._jpeg_of = data, result
                self._seq += 1
                self.encoded += 1
        self._notify()
        return data

    def _notify(self) -> None:
        for callback in self._listeners:
            callback()

    # -- consumers (the preview server) ------------------------------------------------------
    def snapshot(self) -> Optional[bytes]:
        """The JPEG of the latest frame (encoded now unless it already was); None before any."""
        with self._lock:
            result = self._result
        return None if result is None else self._encode(result)

    def latest(self) -> Optional[FrameResult]:
        """The latest result offered, None before the first."""
        with self._lock:
            return self._result

    def join(self) -> bool:
        """Count a new viewer; False (not counted) when `max_viewers` already watch."""
        with self._lock:
            if self._closed or self._viewers >= self.max_viewers:
                return False
            self._viewers += 1
            return True

    def leave(self) -> None:
        """Uncount a viewer that `join()` accepted."""
        with self._lock:
            self._viewers -= 1

    @property
    def viewers(self) -> int:
        """Viewers currently streaming."""
        with self._lock:
            return self._viewers

    def newer_jpeg(self, after: int) -> Tuple[int, Optional[bytes]]:
        """(seq, jpeg) of the newest JPEG if it is newer than `after`, else (after, None);
        (-1, None) once the hub is closed. Never waits: a listener says when to ask again."""
        with self._lock:
            if self._closed:
                return -1, None
            if self._seq <= after:
                return after, None
            return self._seq, self._jpeg

    def close(self) -> None:
        """End every stream: `newer_jpeg` returns -1 from now on, and listeners are told."""
        with self._lock:
            self._closed = True
        self._notify()
