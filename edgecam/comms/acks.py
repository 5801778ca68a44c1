"""Tell the broker's acknowledgements of our QoS 1 messages apart from paho's other reports.

paho numbers QoS 0 and QoS 1 messages from one counter (wrapping at 65,535) and reports both
through `on_publish`: a QoS 0 message when it was written, a QoS 1 one when its PUBACK came.
Forwarding every report would hand the spool a QoS 0 number that, after a wrap, is also the
number of an event still waiting for its PUBACK, deleting that event early; it would also
wake the spool worker for every per-frame message. Only numbers handed out for QoS 1 are
forwarded here. A PUBACK can be reported before `publish()` has even returned the number;
such reports are held for `horizon` seconds so the late `sent()` still finds them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Optional, Set


class AckFilter:
    """Which `on_publish` reports acknowledge a QoS 1 message we sent (thread-safe)."""

    def __init__(self, horizon: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self._horizon, self._clock = horizon, clock
        self._awaiting: Set[int] = set()
        self._unclaimed: "OrderedDict[int, tuple]" = OrderedDict()  # mid -> (time, accepted)
        self._lock = threading.Lock()

    def sent(self, mid: int) -> Optional[bool]:
        """Record that a QoS 1 message got `mid`. Returns its ack (accepted or not) when that
        was reported already, else None: the ack will come through `reported`."""
        with self._lock:
            self._expire()
            early = self._unclaimed.pop(mid, None)
            if early is not None:
                return early[1]
            self._awaiting.add(mid)
            return None

    def reported(self, mid: int, accepted: bool) -> bool:
        """paho reported `mid` done; True when it acknowledges a QoS 1 message we sent."""
        with self._lock:
            if mid in self._awaiting:
                self._awaiting.discard(mid)
                return True
            self._unclaimed[mid] = (self._clock(), accepted)
            self._unclaimed.move_to_end(mid)
            self._expire()
            return False

    def _expire(self) -> None:
        limit = self._clock() - self._horizon
        while self._unclaimed:
            mid, (seen, _) = next(iter(self._unclaimed.items()))
            if seen >= limit:
                return
            del self._unclaimed[mid]

    def __len__(self) -> int:
        """QoS 1 messages sent and not yet acknowledged."""
        with self._lock:
            return len(self._awaiting)
