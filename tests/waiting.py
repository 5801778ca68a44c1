"""Waiting on a condition instead of sleeping a fixed time: a test then takes as long as the
thing it waits for, and no longer."""

from __future__ import annotations

import time
from typing import Callable, Optional, Tuple, Type, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, step: float = 0.05,
               ignoring: Tuple[Type[BaseException], ...] = ()) -> Optional[T]:
    """Poll `predicate` every `step` s until it returns something true, for at most `timeout`
    s; returns its last value (false on timeout). An exception of a type in `ignoring` counts
    as a false answer (a server not up yet, a page element not rendered yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value: Optional[T] = predicate()
        except ignoring:
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)
