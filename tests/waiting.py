"""Waiting on a condition instead of sleeping a fixed time: a test then takes as long as the
thing it waits for, and no longer."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, step: float = 0.05) -> T:
    """Poll `predicate` every `step` s until it returns something true, for at most `timeout`
    s; returns its last value (false on timeout)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value
