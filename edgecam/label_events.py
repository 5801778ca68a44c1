"""Per-label events, counts and occupancy: a pipeline processor beside events.EventStage.

For every watched label, `LabelEvents` appends to `result.events` (datatypes.py):

- an `Event` start once the label has been seen in `start_frames` inferred frames in a row,
  and its end once it has been absent from `end_frames` in a row (reason `absent`); only
  when nothing is tracked, since the tracker's events replace these (`events=False`);
- a `CountChange` when the number of its detections in a frame changes;
- an `OccupancyChange`: ON as soon as the label is confirmed, OFF only `off_delay` s after
  its last sighting (hysteresis). A fresh process does not trust the retained value of the
  previous one: the state starts unknown and reads OFF once `off_delay` has passed without
  a confirmed sighting.

Skipped frames (motion gating, detection paused) say nothing about what is in view: they
only let time pass, so occupancy can go off; `tick()` does the same without a frame.
`finish()` (a run's end, a lost camera, a long pause) ends what is open and turns occupancy
OFF (nothing is seen any more: a stopped process must not leave a retained ON behind); a
pause also reads every count as 0.

The state machines take the time as an argument, so they are tested without sleeping.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .datatypes import CountChange, EndReason, Event, FrameResult, OccupancyChange, StageEvent
from .stages import Processor


def _label_event(
    kind: str,
    event_id: str,
    label: str,
    score: float,
    start_ts: float,
    end_ts: Optional[float] = None,
    reason: Optional[EndReason] = None,
    seq: Optional[int] = None,
) -> Event:
    # Rounded as published; the duration from the exact times, as it always was.
    last = start_ts if end_ts is None else end_ts
    return Event(
        kind,
        event_id,
        label,
        score=round(float(score), 4),
        top_score=round(float(score), 4),
        first_seen=round(start_ts, 3),
        last_seen=round(last, 3),
        duration=round(last - start_ts, 3),
        reason=reason,
        seq=seq,
    )


class LabelDebounce:
    """Debounce for one label: start after `start_frames` consecutive frames with it, end after
    `end_frames` consecutive frames without it. The event's score is the top score seen."""

    def __init__(
        self,
        label: str,
        start_frames: int,
        end_frames: int,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ):
        self.label = label
        self._start_frames, self._end_frames = start_frames, end_frames
        self._new_id = new_id
        self._seen = 0
        self._absent = 0
        self._pending_score = 0.0
        self._pending_ts = 0.0
        # The open event: (id, top score, start time), None between an end and a start.
        self._active: Optional[Tuple[str, float, float]] = None

    @property
    def active(self) -> bool:
        """True between a start and its end."""
        return self._active is not None

    def update(self, top_score: Optional[float], ts: float, seq: Optional[int] = None) -> List[Event]:
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
            self._active = (self._new_id(), self._pending_score, self._pending_ts)
            self._seen, self._absent = 0, 0
            return [
                _label_event("start", self._active[0], self.label, self._active[1], self._active[2], seq=seq)
            ]
        if top_score is not None:
            self._absent = 0
            event_id, score, start = self._active
            self._active = (event_id, max(score, top_score), start)
            return []
        self._absent += 1
        if self._absent < self._end_frames:
            return []
        return [self.finish(ts, EndReason.ABSENT, seq)]

    def finish(self, ts: float, reason: EndReason, seq: Optional[int] = None) -> Event:
        """End the active event now (e.g. at shutdown); call only when `active`."""
        assert self._active is not None
        event_id, score, start = self._active
        self._active, self._absent = None, 0
        return _label_event("end", event_id, self.label, score, start, ts, reason, seq)


class Occupancy:
    """ON after a debounced sighting, OFF only `off_delay` s after the last sighting.

    The state starts unknown (None): it reads ON as soon as the label is confirmed, or OFF
    once `off_delay` has passed since `started` without a confirmed sighting.
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
            new: Optional[bool] = True
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

    def clear(self) -> Optional[bool]:
        """OFF now, whatever the delay (nothing can be seen any more); False when that is a
        change (from ON or unknown), else None."""
        if self.state is False:
            return None
        self.state, self._last_seen = False, None
        return False


@dataclass(frozen=True)
class LabelEventOptions:
    """Which labels are watched, the debounce in frames, the occupancy off delay in seconds,
    and whether per-label start/end events are made (not when the tracker makes events)."""

    watch: Tuple[str, ...] = ("person",)
    start_frames: int = 2
    end_frames: int = 10
    off_delay: float = 5.0
    events: bool = True


class LabelEvents(Processor):
    """The per-label processor: events, counts and occupancy of each watched label."""

    def __init__(
        self,
        options: LabelEventOptions = LabelEventOptions(),
        clock: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ):
        self.options = options
        self._watch = tuple(dict.fromkeys(options.watch))
        self._clock = clock
        now = clock()
        self._debounce = {
            lb: LabelDebounce(lb, options.start_frames, options.end_frames, new_id) for lb in self._watch
        }
        self._occupancy = {lb: Occupancy(options.off_delay, now) for lb in self._watch}
        self._counts: Dict[str, Optional[int]] = dict.fromkeys(self._watch)

    def __call__(self, result: FrameResult) -> FrameResult:
        if result.skipped:
            events = self.tick()
        else:
            events = self.process(result)
        if not events:
            return result
        return dataclasses.replace(result, events=tuple(result.events) + tuple(events))

    def process(self, result: FrameResult) -> List[StageEvent]:
        """What one inferred frame changes (state advances)."""
        now, frame = self._clock(), result.frame
        tops: Dict[str, float] = {}
        counts = dict.fromkeys(self._watch, 0)
        for d in result.detections:
            if d.label in counts:
                counts[d.label] += 1
                tops[d.label] = max(tops.get(d.label, 0.0), float(d.score))
        out: List[StageEvent] = []
        for label in self._watch:
            out += self._count(label, counts[label], frame.ts)
            made = self._debounce[label].update(tops.get(label), frame.ts, frame.seq)
            if self.options.events:
                out += made
            out += self._occupy(label, counts[label] > 0, now)
        return out

    def tick(self) -> List[StageEvent]:
        """Time passed without a sighting (a skipped frame, or none): occupancy going off."""
        now = self._clock()
        out: List[StageEvent] = []
        for label in self._watch:
            out += self._occupy(label, False, now)
        return out

    def finish(self, seq: Optional[int] = None, reason: EndReason = EndReason.SHUTDOWN) -> List[StageEvent]:
        """End every open event (`reason`), occupancy OFF; for a pause every count reads 0.

        The ends carry no frame (`seq` None): no frame made them."""
        out: List[StageEvent] = []
        for label in self._watch:
            debounce = self._debounce[label]
            if debounce.active:
                ended = debounce.finish(time.time(), reason)
                if self.options.events:
                    out.append(ended)
            if reason == EndReason.PAUSED:
                out += self._count(label, 0, time.time())
            cleared = self._occupancy[label].clear()
            if cleared is not None:
                out.append(OccupancyChange(label, cleared))
        return out

    # -- internals ------------------------------------------------------------------------
    def _count(self, label: str, count: int, ts: float) -> List[StageEvent]:
        if self._counts[label] == count:
            return []
        self._counts[label] = count
        return [CountChange(label, count, round(ts, 3))]

    def _occupy(self, label: str, seen: bool, now: float) -> List[StageEvent]:
        changed = self._occupancy[label].update(self._debounce[label].active, seen, now)
        return [] if changed is None else [OccupancyChange(label, changed)]


def label_events_from_config(events_cfg, watch, tracked: bool) -> LabelEvents:
    """The LabelEvents for an `[events]` config section; `watch` (detect.watch) picks the
    labels; `tracked`: the tracker makes the events, so only counts and occupancy are made."""
    return LabelEvents(
        LabelEventOptions(
            tuple(watch),
            events_cfg.start_frames,
            events_cfg.end_frames,
            events_cfg.occupancy_off_delay,
            events=not tracked,
        )
    )
