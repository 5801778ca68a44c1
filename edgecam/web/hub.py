"""The latest annotated JPEG, shared by every preview viewer.

A frame is drawn and JPEG-encoded at most once, whatever the number of viewers, and only
while someone watches (or asks for a snapshot), at most `max_fps` times a second. Viewers
wait on a condition for the next JPEG and always get the newest one: a viewer that falls
behind skips frames instead of queueing them.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional, Tuple

from ..annotate import Annotate, encode_jpeg
from ..datatypes import FrameResult


class JpegHub:
    """Latest result in, latest JPEG out; counts viewers and caps them at `max_viewers`."""

    def __init__(
        self,
        annotate: Annotate,
        max_fps: float,
        max_viewers: int,
        quality: int = 80,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._annotate, self._quality, self._clock = annotate, quality, clock
        self._interval = 1.0 / max_fps
        self.max_viewers = max_viewers
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self._result: Optional[FrameResult] = None
        self._jpeg: Optional[bytes] = None
        self._jpeg_of: Optional[FrameResult] = None
        self._seq = 0
        self._next_due = 0.0
        self._viewers = 0
        self._closed = False
        self.encoded = 0

    # -- producer (the web sink's pipeline thread) -------------------------------------------
    def offer(self, result: FrameResult) -> None:
        """Make `result` the latest frame; encode it now if someone watches and it is due."""
        now = self._clock()
        with self._cond:
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
            with self._cond:
                self._jpeg, self._jpeg_of = data, result
                self._seq += 1
                self.encoded += 1
                self._cond.notify_all()
            return data

    # -- consumers (HTTP handler threads) ----------------------------------------------------
    def snapshot(self) -> Optional[bytes]:
        """The JPEG of the latest frame (encoded now unless it already was); None before any."""
        with self._cond:
            result = self._result
        return None if result is None else self._encode(result)

    def latest(self) -> Optional[FrameResult]:
        """The latest result offered, None before the first."""
        with self._cond:
            return self._result

    def join(self) -> bool:
        """Count a new viewer; False (not counted) when `max_viewers` already watch."""
        with self._cond:
            if self._closed or self._viewers >= self.max_viewers:
                return False
            self._viewers += 1
            return True

    def leave(self) -> None:
        """Uncount a viewer that `join()` accepted."""
        with self._cond:
            self._viewers -= 1

    @property
    def viewers(self) -> int:
        """Viewers currently streaming."""
        with self._cond:
            return self._viewers

    def next_jpeg(self, after: int, timeout: float) -> Tuple[int, Optional[bytes]]:
        """(seq, jpeg) of the first JPEG newer than `after`, waiting up to `timeout` s.

        Returns (after, None) on timeout and (-1, None) once the hub is closed.
        """
        deadline = self._clock() + timeout
        with self._cond:
            while not self._closed and self._seq <= after:
                left = deadline - self._clock()
                if left <= 0:
                    return after, None
                self._cond.wait(left)
            if self._closed:
                return -1, None
            return self._seq, self._jpeg

    def close(self) -> None:
        """Wake every waiting viewer so it can end its stream."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
