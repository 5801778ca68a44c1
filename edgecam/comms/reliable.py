"""At-least-once, in-order delivery of QoS 1 messages through the spool.

A message is stored first, handed to the transport only while connected and only after
every older message was handed over (so what the transport holds is always the oldest
prefix of the spool), and deleted when the broker acknowledges it. After a reconnect the
transport re-sends what it still holds; the rest of the backlog follows once those are
acknowledged, which keeps the original order. Subscribers drop duplicates by event id.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Dict, Optional

from .base import Communicator
from .spool import Spool

log = logging.getLogger("edgecam.mqtt")


class ReliablePublisher:
    """Spool-backed QoS 1 publisher; one worker thread owns the in-flight bookkeeping."""

    def __init__(self, comm: Communicator, spool: Spool, window: int = 32, resend_grace: float = 30.0):
        self._comm = comm
        self.spool = spool
        self._window = window
        self._grace = resend_grace
        self._q: "queue.SimpleQueue" = queue.SimpleQueue()
        self._held: Dict[int, int] = {}  # transport mid -> spool row (worker thread only)
        self._last_handed = 0
        self._resend_since: Optional[float] = None  # monotonic time we started waiting for re-sends
        self._thread = threading.Thread(target=self._run, name="edgecam-mqtt-spool", daemon=True)
        comm.add_ack_listener(lambda mid, _ok: self._q.put(("ack", mid)))
        comm.add_connection_listener(lambda up: self._q.put(("conn", up)))

    def start(self) -> None:
        """Start the worker; spooled messages from an earlier run go out first."""
        self._thread.start()
        self._q.put(("kick", None))

    def publish(
        self, topic: str, payload: bytes, opens: Optional[str] = None, closes: Optional[str] = None
    ) -> None:
        """Store the message durably, then let the worker send it (never blocks on the network).
        `opens` / `closes`: the id of the event it starts or updates / ends (Spool.append)."""
        self.spool.append(topic, payload, opens, closes)
        self._q.put(("kick", None))

    def depth(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return self.spool.depth()

    @property
    def dropped(self) -> int:
        """Messages dropped because the spool was full."""
        return self.spool.dropped

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for every message to be acknowledged; True when none is left."""
        deadline = time.monotonic() + timeout
        while self.spool.depth() > 0:
            if time.monotonic() >= deadline or not self._comm.connected:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the worker; unacknowledged messages stay in the spool for the next run."""
        if self._thread.is_alive():
            self._q.put(("stop", None))
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                kind, arg = self._q.get(timeout=0.5)
            except queue.Empty:
                kind, arg = "tick", None
            if kind == "stop":
                return
            try:
                self._step(kind, arg)
            except Exception:  # the spool must keep working whatever one message does
                log.exception("mqtt: spool worker error")

    def _step(self, kind: str, arg) -> None:
        if kind == "ack":
            row = self._held.pop(arg, None)
            if row is None:
                # A QoS 1 message that is not from the spool (retained state): nothing was
                # freed, so there is no reason to query the spool again.
                return
            self.spool.delete(row)
            if not self._held:
                self._resend_since = None
        elif kind == "conn":
            if arg and self._held:
                self._resend_since = time.monotonic()
            elif not arg:
                self._resend_since = None
        elif kind == "tick" and self._resend_since is not None:
            if time.monotonic() - self._resend_since > self._grace:
                log.warning(
                    "mqtt: %d event(s) re-sent after reconnect are still unacknowledged; "
                    "sending the rest of the spool",
                    len(self._held),
                )
                self._resend_since = None
        self._fill()

    def _fill(self) -> None:
        if not self._comm.connected or self._resend_since is not None:
            return
        while len(self._held) < self._window:
            rows = self.spool.pending(self._last_handed, self._window - len(self._held))
            if not rows:
                return
            for msg in rows:
                mid = self._comm.publish(msg.topic, msg.payload, qos=1)
                if mid is None:
                    return
                self._held[mid] = msg.row
                self._last_handed = msg.row
