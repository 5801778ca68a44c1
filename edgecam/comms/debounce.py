"""Pure per-label state machines: debounced events and occupancy with an off delay.

Both take the time as an argument (monotonic seconds), so they are tested without sleeping.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable, List, Optional


@dataclass(frozen=True)
class Event:
    """A start or end of a watched label being in view."""

    kind: str  # "start" or "end"
    id: str
    label: str
    score: float  # top score seen so far in the event
    start_ts: float
    end_ts: Optional[float] = None
    reason: Optional[str] = None  # for "end": "absent", "shutdown", "camera_offline", "paused"


class EventTracker:
    """Debounce for one label: start after `start_frames` consecutive frames with it, end after
    `end_frames` consecutive frames without it."""

    def __init__(self, label: str, start_frames: int, end_frames: int,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.label = label
        self._start_frames, self._end_frames = start_frames, end_frames
        self._new_id = new_id
        self._seen = 0
        self._absent = 0
        self._pending_score = 0.0
        self._pending_ts = 0.0
        self._active: Optional[Event] = None

    @property
    def active(self) -> bool:
        """True between a start and its end."""
        return self._active is not None

    def update(self, top_score: Optional[float], ts: float) -> List[Event]:
        """Feed one frame (`top_score` None when the label is absent); returns 0 or 1 events."""
        if self._active is None:
            if top_score is None:
                self._seen, self._pending_score = 0, 0.0
                return []
            if self._seen == 0:
                self._pending_ts = ts
            self._seen += 1
            self._pending_score = max(self._pending_score, top_score)
            if self._seen < self._start_frames:
                return []
            self._active = Event("start", self._new_id(), self.label, self._pending_score,
                                 self._pending_ts)
            self._seen, self._absent = 0, 0
            return [self._active]
        if top_score is not None:
            self._absent = 0
            if top_score > self._active.score:
                self._active = Event("start", self._active.id, self.label, top_score,
                                     self._active.start_ts)
            return []
        self._absent += 1
        if self._absent < self._end_frames:
            return []
        return [self.finish(ts, "absent")]

    def finish(self, ts: float, reason: str) -> Event:
        """End the active event now (e.g. at shutdown); call only when `active`."""
        assert self._active is not None
        ev = self._active
        self._active, self._absent = None, 0
        return Event("end", ev.id, self.label, ev.score, ev.start_ts, ts, reason)


class Occupancy:
    """ON after a debounced sighting, OFF only `off_delay` s after the last sighting.

    The state starts unknown (None): a fresh process does not trust the retained value of the
    previous one, so it reports ON as soon as the label is confirmed, or OFF once `off_delay`
    has passed since start without a confirmed sighting.
    """

    def __init__(self, off_delay: float, started: float):
        self._delay = off_delay
        self._last_seen: Optional[float] = None
        self._started = started
        self.state: Optional[bool] = None

    def update(self, confirmed: bool, seen: bool, now: float) -> Optional[bool]:
        """Feed one frame or a tick; returns the new state when it changed, else None.

        `confirmed`: the label passed the start debounce (an event is active);
        `seen`: it is in this frame (keeps the occupancy on).
        """
        if seen or confirmed:
            self._last_seen = now if seen or self._last_seen is None else self._last_seen
        if confirmed:
            new = True
        else:
            ref = self._last_seen if self._last_seen is not None else self._started
            if self.state is True and now - ref < self._delay:
                new = True
            elif self.state is None and now - self._started < self._delay:
                new = None
            else:
                new = False
        if new is None or new == self.state:
            return None
        self.state = new
        return new
