"""Settings that commands change at run time and the detector reads every frame."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

THRESHOLD_MIN, THRESHOLD_MAX = 0.0, 1.0
"""The detection thresholds `set/threshold` accepts at run time."""


@dataclass(frozen=True)
class Settings:
    """One consistent view of the live settings."""

    threshold: float
    enabled: bool


class LiveSettings:
    """Thread-safe holder of `Settings`: the dispatcher writes, the pipeline reads.

    Reading is a single attribute load of an immutable value, so the detector can call
    `current()` (or the `threshold` / `enabled` properties) every frame at no cost.
    """

    def __init__(self, threshold: float = 0.5, enabled: bool = True):
        self._lock = threading.Lock()
        self._value = Settings(float(threshold), bool(enabled))

    def current(self) -> Settings:
        """The latest settings as one immutable value."""
        return self._value

    @property
    def threshold(self) -> float:
        """Minimum detection score currently in force."""
        return self._value.threshold

    @property
    def enabled(self) -> bool:
        """False while detection is paused by a command."""
        return self._value.enabled

    def update(self, **changes) -> Settings:
        """Replace some fields (threshold=..., enabled=...) and return the new settings."""
        with self._lock:
            self._value = replace(self._value, **changes)
            return self._value
