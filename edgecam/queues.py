"""The pipeline's hand-over points between threads: a latest-item slot for live frames and a
bounded FIFO that blocks or drops its oldest item."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Optional


class Closed(Exception):
    """Raised by `get` on a queue that was closed and is empty."""


class LatestSlot:
    """Holds at most one item; a put replaces (drops) the one not yet taken."""

    def __init__(self, on_drop: Callable[[], None]):
        self._item = None
        self._has = False
        self._closed = False
        self._cond = threading.Condition()
        self._on_drop = on_drop

    def put(self, item) -> None:
        """Store `item`, dropping (and counting) the previous one if it was never taken."""
        with self._cond:
            if self._has:
                self._on_drop()
            self._item, self._has = item, True
            self._cond.notify()

    def get(self):
        """The newest item, waiting for one; raises Closed when closed and empty."""
        with self._cond:
            while not self._has:
                if self._closed:
                    raise Closed
                self._cond.wait()
            item, self._item, self._has = self._item, None, False
            return item

    def close(self) -> None:
        """No more puts; getters finish what is there, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class BoundedQueue:
    """A FIFO of at most `size` items. `put` blocks when full, or drops the oldest if `drop`."""

    def __init__(
        self,
        size: int,
        drop: bool,
        on_drop: Callable[[], None] = lambda: None,
        keep: Callable[[Any], bool] = lambda item: False,
    ):
        self._items: Deque = collections.deque()
        self._size, self._drop, self._on_drop, self._keep = size, drop, on_drop, keep
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item) -> None:
        """Append; when full either wait for room or drop the oldest (counted).

        Items for which `keep(item)` is true are never dropped: the queue may then hold more
        than `size` of them (they are rare, e.g. results that carry events).
        """
        with self._cond:
            while len(self._items) >= self._size and not self._closed:
                if self._drop:
                    self._drop_oldest_expendable()
                    break
                self._cond.wait()
            self._items.append(item)
            self._cond.notify_all()

    def _drop_oldest_expendable(self) -> None:
        for i, queued in enumerate(self._items):
            if not self._keep(queued):
                del self._items[i]
                self._on_drop()
                return

    def get(self, timeout: Optional[float] = None):
        """The oldest item, waiting for one; raises Closed when closed and empty, and
        TimeoutError when `timeout` s passed without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise Closed
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(left)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more puts; getters drain what is left, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
