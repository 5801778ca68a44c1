"""Running statistics for the `<prefix>/stats` message: fps, inference percentiles, health."""

from __future__ import annotations

import glob
import time
from collections import deque
from typing import Callable, Deque, Optional

THERMAL_GLOB = "/sys/class/thermal/thermal_zone*/temp"


def cpu_temperature(pattern: str = THERMAL_GLOB) -> Optional[float]:
    """CPU temperature in °C from the first readable thermal zone, None when there is none."""
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, encoding="ascii") as fh:
                return round(int(fh.read().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return None


def percentile(values, q: float) -> Optional[float]:
    """The q-th percentile (0..100, nearest rank) of `values`, None when empty."""
    data = sorted(values)
    if not data:
        return None
    rank = max(1, int(-(-q * len(data) // 100)))  # ceil without floats
    return data[min(rank, len(data)) - 1]


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
        p50, p95 = percentile(recent, 50), percentile(recent, 95)
        return {"v": 1, "ts": round(time.time(), 3), "fps": round(fps, 2),
                "inference_ms": {"p50": None if p50 is None else round(p50, 2),
                                 "p95": None if p95 is None else round(p95, 2)},
                "frames": self._frames, "frames_dropped": int(dropped),
                "cpu_temp_c": cpu_temperature(), "uptime_s": round(now - self._started, 1),
                "spool_depth": int(spool_depth), "spool_dropped": int(spool_dropped)}
