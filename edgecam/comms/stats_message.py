"""Running statistics for the `<prefix>/stats` message: fps, inference percentiles, health."""

from __future__ import annotations

import time
from collections import deque
from typing import Deque, Optional

from .. import backends
from ..stats import soc_temperature, summarize


class StatsCollector:
    """Collects per-frame numbers between reports (not thread-safe: one caller at a time)."""

    def __init__(self, started: float, window: int = 500, backend: str = "cpu"):
        self._started = started
        self._backend = backend
        self._inference: Deque[float] = deque(maxlen=window)
        # The AI Camera's own DNN time per frame (its CPU-side inference time is 0).
        self._sensor: Deque[float] = deque(maxlen=window)
        self._frames = 0
        self._last_report = started
        self._frames_at_report = 0

    def record(self, inference_ms: float, sensor_ms: Optional[float] = None) -> None:
        """Count one processed frame (`sensor_ms`: the IMX500's DNN time, when reported)."""
        self._frames += 1
        self._inference.append(float(inference_ms))
        if sensor_ms is not None:
            self._sensor.append(float(sensor_ms))

    @property
    def frames(self) -> int:
        """Frames processed since start."""
        return self._frames

    def report(self, now: float, dropped: int, spool_depth: int, spool_dropped: int) -> dict:
        """The stats payload (schema stats.json); fps and percentiles cover the time since
        the previous report."""
        elapsed = max(1e-6, now - self._last_report)
        fps = (self._frames - self._frames_at_report) / elapsed
        recent, sensor = list(self._inference), list(self._sensor)
        self._last_report, self._frames_at_report = now, self._frames
        self._inference.clear()
        self._sensor.clear()
        temperature = soc_temperature()
        payload = {
            "v": 1,
            "ts": round(time.time(), 3),
            "fps": round(fps, 2),
            "inference_ms": _percentiles(recent),
            "frames": self._frames,
            "frames_dropped": int(dropped),
            "cpu_temp_c": None if temperature is None else round(temperature, 1),
            "uptime_s": round(now - self._started, 1),
            "spool_depth": int(spool_depth),
            "spool_dropped": int(spool_dropped),
            "backend": self._backend,
        }
        if backends.info(self._backend).sensor_time:
            payload["sensor_inference_ms"] = _percentiles(sensor)
        return payload


def _percentiles(values) -> dict:
    """{"p50", "p95"} of latencies in ms, both None for no values."""
    if not values:
        return {"p50": None, "p95": None}
    window = summarize(values)
    return {"p50": round(window.p50, 2), "p95": round(window.p95, 2)}
