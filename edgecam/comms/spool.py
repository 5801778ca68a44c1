"""On-disk FIFO of QoS 1 messages (sqlite, WAL): written before sending, deleted on ack.

The spool survives process restarts; it is bounded, dropping (and counting) the oldest rows
when full. Every call is one short transaction behind a lock, so any thread may use it.

Beside the FIFO it remembers which events are open: a message appended with `opens=ID`
(an event's start or update) is kept with the last time it was known to be open, until a
message with `closes=ID` (its end) is appended, in the same transaction as that message. What
is still open when a process starts was left open by a crash (see MqttSink).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, cast

from ..errors import EdgecamError

log = logging.getLogger("edgecam.mqtt")

SPOOL_FILE = "mqtt-spool.sqlite3"


class SpooledMessage(NamedTuple):
    """One stored message; `row` orders the spool (oldest first)."""

    row: int
    topic: str
    payload: bytes


class OpenEvent(NamedTuple):
    """An event started (or updated) by `payload` on `topic` and not ended; `seen`: the last
    unix time it was known to be open."""

    id: str
    topic: str
    payload: bytes
    seen: float


class Spool:
    """A bounded, persistent, thread-safe FIFO of (topic, payload)."""

    def __init__(self, path: Path, max_rows: int = 10000):
        self.path = Path(path)
        self.max_rows = max_rows
        self.dropped = 0
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=5.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode is durable across a process crash (only power loss can
            # lose the last commits), at a fraction of FULL's fsync cost on an SD card.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS spool (row INTEGER PRIMARY KEY "
                "AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS open_events (id TEXT PRIMARY KEY, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL, seen REAL NOT NULL)"
            )
            # Counted once here, then kept in memory: COUNT(*) scans the table, and depth()
            # is read on every append, every stats message and every web status poll.
            self._count = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
        except sqlite3.Error as exc:
            raise EdgecamError(
                f"cannot open the MQTT spool {self.path}: {exc} (check the state directory is writable)"
            ) from None

    def append(
        self, topic: str, payload: bytes, opens: Optional[str] = None, closes: Optional[str] = None
    ) -> int:
        """Store a message; returns its row. Drops the oldest rows beyond `max_rows`.

        `opens`: the id of the event this message starts or updates, remembered as open (and
        known open now); `closes`: the id of the event it ends, forgotten.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("INSERT INTO spool (topic, payload) VALUES (?, ?)", (topic, payload))
                row = int(cast(int, cur.lastrowid))  # an INSERT always sets it
                if opens is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO open_events VALUES (?, ?, ?, ?)",
                        (opens, topic, payload, time.time()),
                    )
                if closes is not None:
                    self._db.execute("DELETE FROM open_events WHERE id = ?", (closes,))
                excess = self._count + 1 - self.max_rows
                gone = 0
                if excess > 0:
                    gone = self._db.execute(
                        "DELETE FROM spool WHERE row IN (SELECT row FROM spool ORDER BY row LIMIT ?)",
                        (excess,),
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += 1 - gone
            self.dropped += gone
        if excess > 0:
            log.warning(
                "mqtt: event spool full (%d): dropped the oldest %d event(s), %d in total",
                self.max_rows,
                excess,
                self.dropped,
            )
        return row

    def pending(self, after: int = 0, limit: int = 100) -> List[SpooledMessage]:
        """Up to `limit` messages with row > `after`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT row, topic, payload FROM spool WHERE row > ? ORDER BY row LIMIT ?", (after, limit)
            ).fetchall()
        return [SpooledMessage(int(r), t, bytes(p)) for r, t, p in rows]

    def delete(self, row: int) -> None:
        """Forget a message (it was acknowledged)."""
        with self._lock:
            self._count -= self._db.execute("DELETE FROM spool WHERE row = ?", (row,)).rowcount

    def open_events(self) -> List[OpenEvent]:
        """Events started and not ended, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, seen FROM open_events ORDER BY seen"
            ).fetchall()
        return [OpenEvent(i, t, bytes(p), float(s)) for i, t, p, s in rows]

    def touch_open(self, seen: float) -> None:
        """Record that every open event was still open at unix time `seen`."""
        with self._lock:
            self._db.execute("UPDATE open_events SET seen = ? WHERE seen < ?", (seen, seen))

    def depth(self) -> int:
        """How many messages wait for an acknowledgement."""
        return self._count

    def close(self) -> None:
        """Close the database (further calls fail)."""
        with self._lock:
            self._db.close()
