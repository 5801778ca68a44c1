"""Running statistics for the `<prefix>/stats` message: fps, inference percentiles, health."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Deque

from ..stats import soc_temperature, summarize


def dropped_counter(source) -> Callable[[], int]:
    """Turn what the pipeline gives (callable, object with `dropped`/`frames_dropped`, None)
    into a function returning the dropped-frame count."""
    if source is None:
        return lambda: 0
    if callable(source):
        return lambda: int(source())
    for attr in ("frames_dropped", "dropped"):
        if hasattr(source, attr):
            return lambda: int(getattr(source, attr))
    raise TypeError(f"stats source {source!r}: give a callable or an object with .dropped")


class StatsCollector:
    """Collects per-frame numbers between reports (not thread-safe: one caller at a time)."""

    def __init__(self, started: float, window: int = 500):
        self._started = started
        self._inference: Deque[float] = deque(maxlen=window)
        self._frames = 0
        self._last_report = started
        self._frames_at_report = 0

    def record(self, inference_ms: float) -> None:
        """Count one processed frame."""
        self._frames += 1
        self._inference.append(float(inference_ms))

    @property
    def frames(self) -> int:
        """Frames processed since start."""
        return self._frames

    def report(self, now: float, dropped: int, spool_depth: int, spool_dropped: int) -> dict:
        """The stats payload (schema stats.json); fps and percentiles cover the time since
        the previous report."""
        elapsed = max(1e-6, now - self._last_report)
        fps = (self._frames - self._frames_at_report) / elapsed
        recent = list(self._inference)
        self._last_report, self._frames_at_report = now, self._frames
        self._inference.clear()
        window = summarize(recent)
        p50, p95 = (round(window.p50, 2), round(window.p95, 2)) if recent else (None, None)
        temperature = soc_temperature()
        return {"v": 1, "ts": round(time.time(), 3), "fps": round(fps, 2),
                "inference_ms": {"p50": p50, "p95": p95},
                "frames": self._frames, "frames_dropped": int(dropped),
                "cpu_temp_c": None if temperature is None else round(temperature, 1), "uptime_s": round(now - self._started, 1),
                "spool_depth": int(spool_depth), "spool_dropped": int(spool_dropped)}
