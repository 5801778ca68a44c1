"""Which frames go into which clip, decided from the events, in frame order.

`ClipStage` wraps the event stage (a pipeline Processor): after it has made a frame's events
it opens a clip on a watched object's `start` (from `pre_roll` s before its first sighting),
lets overlapping events share it, ends it `post_roll` s after the last of them was last
seen, and splits one that reaches `max_seconds`. The `end` event of each object leaves here
with the clip's name and planned length, so MQTT and `--json` carry them; the clip sink
follows the plan through `ClipNotes` (one note per frame while a clip is open), on its own
thread and at its own pace.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Set, Tuple, Union

from ..datatypes import EndReason, Event, FrameResult
from ..stages import Processor
from .store import clip_name


@dataclass(frozen=True)
class ClipTimes:
    """The clip settings the plan needs (seconds)."""

    pre_roll: float = 3.0
    post_roll: float = 3.0
    max_seconds: float = 60.0


@dataclass(frozen=True)
class OpenClip:
    """Start writing clip `name` from `start`: from the pre-roll ring, or when `fresh` (a
    split) with this very frame, encoded as a keyframe."""

    name: str
    start: float
    fresh: bool = False
    previous: Optional[str] = None


@dataclass(frozen=True)
class CloseClip:
    """Finish clip `name`; nothing later than `end` belongs to it. `events`: the sidecar's
    summary of each event in it."""

    name: str
    end: float
    events: Tuple[dict, ...] = ()


@dataclass(frozen=True)
class ClipNote:
    """What the plan says about frame `seq`: clips to close then open before it is written,
    and the boxes of the open clip's objects in it; `earlier`: (seq, box) of an object that
    started at this frame, from its first sighting on (the frames before its track was sure),
    for the frames of the clip before this one."""

    seq: int
    actions: Tuple[Union[CloseClip, OpenClip], ...] = ()
    boxes: Tuple[dict, ...] = ()
    earlier: Tuple[Tuple[int, dict], ...] = ()


class ClipNotes:
    """The notes from the plan (dispatch thread) to the clip sink (its own thread).

    Bounded: if the sink stalls (a hung disk), box-only notes are dropped first; the actions
    are always kept (a handful per event).
    """

    def __init__(self, max_notes: int = 20000):
        self._notes: Deque[ClipNote] = collections.deque()
        self._lock = threading.Lock()
        self._max = max_notes

    def post(self, note: ClipNote) -> None:
        """Add the note for a frame (frames come in order)."""
        with self._lock:
            if len(self._notes) >= self._max and not note.actions:
                return
            self._notes.append(note)

    def take(self, seq: int) -> List[ClipNote]:
        """The notes for frames up to `seq`, oldest first (a frame the sink dropped still
        gets its actions applied, at the next frame it writes)."""
        out = []
        with self._lock:
            while self._notes and self._notes[0].seq <= seq:
                out.append(self._notes.popleft())
        return out

    def take_all(self) -> List[ClipNote]:
        """Every note left (at the end of a run)."""
        with self._lock:
            out, self._notes = list(self._notes), collections.deque()
        return out


@dataclass
class _Clip:
    name: str
    start: float
    end: float
    active: Set[str] = field(default_factory=set)
    events: Dict[str, dict] = field(default_factory=dict)
    earlier: Tuple[Tuple[str, float], ...] = ()  # (name, start) of the parts before a split


def _summary(ev: Event) -> dict:
    return {
        "id": ev.id,
        "label": ev.label,
        "first_seen": ev.first_seen,
        "last_seen": ev.last_seen,
        "top_score": ev.top_score,
        "ended": ev.kind == "end",
    }


class ClipStage(Processor):
    """The event stage followed by the clip plan (see the module docstring).

    `events` is the EventStage (its `tracker.tracks` give the per-frame boxes); `started`,
    `ended` and `active` read through to it. `url_base`: where the preview serves the clips
    (`http://host:port/clips/`), for the end events' `clip_url`; None without [web].
    """

    def __init__(
        self, events, notes: ClipNotes, times: ClipTimes = ClipTimes(), url_base: Optional[str] = None
    ):
        self.events, self.notes, self.times, self.url_base = events, notes, times, url_base
        self._clip: Optional[_Clip] = None
        # Per track not yet in the clip: (seq, t, box) of its sightings, so a clip shows an
        # object boxed from its first sighting, not from min_age later, when it started.
        self._sightings: Dict[str, Deque[Tuple[int, float, List[float]]]] = {}
        self._earlier: List[Tuple[int, dict]] = []
        self._first_t: Optional[float] = None
        self._last_t: Optional[float] = None
        self.clips_opened = 0

    @property
    def active(self) -> bool:
        """As the event stage's (the motion gate reads it)."""
        return bool(self.events.active)

    @property
    def started(self) -> int:
        """Events started (the event stage's count)."""
        return int(self.events.started)

    @property
    def ended(self) -> int:
        """Events ended (the event stage's count)."""
        return int(self.events.ended)

    def __call__(self, result: FrameResult) -> FrameResult:
        result = self.events(result)
        t = result.frame.ts
        if self._first_t is None:
            self._first_t = t
        self._last_t = t
        actions: List[Union[CloseClip, OpenClip]] = []
        clip = self._clip
        if clip is not None and not clip.active and t > clip.end:
            actions.append(self._close(clip, clip.end))
        elif clip is not None and t - clip.start >= self.times.max_seconds:
            actions += self._split(clip, t)
        events, changed = self._plan_events(result.events, t, actions)
        self._post(result, actions)
        return dataclasses.replace(result, events=events) if changed else result

    def finish(self, seq: Optional[int] = None, reason: EndReason = EndReason.SHUTDOWN) -> list:
        """The event stage's final events, with their clip; the open clip ends with them
        (at shutdown; after a camera loss it ends when frames come back past its end)."""
        final = list(self.events.finish(seq, reason))
        t = self._last_t if self._last_t is not None else 0.0
        actions: List[Union[CloseClip, OpenClip]] = []
        events, _ = self._plan_events(final, t, actions)
        clip = self._clip
        if clip is not None and reason is EndReason.SHUTDOWN:
            actions.append(self._close(clip, t))
        if actions:
            self.notes.post(ClipNote(seq if seq is not None else -1, tuple(actions)))
        return list(events)

    # -- internals ------------------------------------------------------------------------
    def _plan_events(self, events, t: float, actions: list) -> Tuple[tuple, bool]:
        out, changed = [], False
        for ev in events:
            if isinstance(ev, Event) and ev.kind == "start":
                self._start(ev, t, actions)
            elif isinstance(ev, Event) and ev.kind == "end":
                ev = self._end(ev)
                changed = True
            elif isinstance(ev, Event) and self._clip is not None and ev.id in self._clip.events:
                self._clip.events[ev.id] = _summary(ev)
            out.append(ev)
        return tuple(out), changed

    def _start(self, ev: Event, t: float, actions: list) -> None:
        clip = self._clip
        if clip is None:
            start = max(ev.first_seen - self.times.pre_roll, self._first_t or ev.first_seen)
            name = clip_name(start, ev.label, ev.id)
            clip = self._clip = _Clip(name, start, t)
            self.clips_opened += 1
            actions.append(OpenClip(name, start))
        clip.active.add(ev.id)
        clip.events[ev.id] = _summary(ev)
        self._earlier += [
            (seq, {"id": ev.id, "label": ev.label, "box": box})
            for seq, seen, box in self._sightings.pop(ev.id, ())
            if clip.start <= seen < t
        ]

    def _end(self, ev: Event) -> Event:
        clip = self._clip
        if clip is None or ev.id not in clip.events:
            return ev
        clip.active.discard(ev.id)
        until = ev.last_seen + self.times.post_roll
        name, start = clip.name, clip.start
        if until <= clip.start and clip.earlier:
            # The object coasted unseen through a split: its clip is the part that holds its
            # post-roll, and this part (empty, unless another object is in it) has none of it.
            name, start = next(((n, s) for n, s in reversed(clip.earlier) if s < until), clip.earlier[0])
            clip.events.pop(ev.id, None)
        else:
            clip.events[ev.id] = _summary(ev)
            clip.end = max(clip.end, until)
        seconds = min(until if name != clip.name else clip.end, start + self.times.max_seconds) - start
        file = f"{name}.mp4"
        url = f"{self.url_base}{file}" if self.url_base else None
        return dataclasses.replace(ev, clip=file, clip_seconds=round(seconds, 2), clip_url=url)

    def _close(self, clip: _Clip, end: float) -> CloseClip:
        self._clip = None
        return CloseClip(clip.name, end, tuple(clip.events.values()))

    def _split(self, clip: _Clip, t: float) -> List[Union[CloseClip, OpenClip]]:
        # A clip that reached max_seconds: this frame (a keyframe) starts the next one; the
        # objects still in view carry on into it.
        closing = self._close(clip, t - 1e-3)
        if not clip.active:
            return [closing]
        first = clip.events[sorted(clip.active)[0]]
        name = clip_name(t, first["label"], first["id"])
        self._clip = _Clip(
            name,
            t,
            clip.end,
            set(clip.active),
            {i: clip.events[i] for i in clip.active},
            clip.earlier + ((clip.name, clip.start),),
        )
        self.clips_opened += 1
        return [closing, OpenClip(name, t, fresh=True, previous=clip.name)]

    def _post(self, result: FrameResult, actions: list) -> None:
        clip = self._clip
        boxes: Tuple[dict, ...] = ()
        if not result.skipped:
            seen = [
                tr for tr in self.events.tracker.tracks if not tr.missed and tr.last_seen == result.frame.ts
            ]
            in_clip = clip.events if clip is not None else {}
            boxes = tuple(
                {"id": tr.id, "label": tr.label, "box": tr.box.as_list()} for tr in seen if tr.id in in_clip
            )
            self._note_sightings(result, [tr for tr in seen if tr.id not in in_clip])
        earlier, self._earlier = tuple(self._earlier), []
        if actions or clip is not None:
            self.notes.post(ClipNote(result.frame.seq, tuple(actions), boxes, earlier))

    def _note_sightings(self, result: FrameResult, tracks) -> None:
        keep = max(1, round(self.times.pre_roll * 60))  # frames: pre_roll at up to 60 fps
        alive = {tr.id for tr in self.events.tracker.tracks}
        for gone in set(self._sightings) - alive:
            del self._sightings[gone]
        for tr in tracks:
            log = self._sightings.setdefault(tr.id, collections.deque(maxlen=keep))
            log.append((result.frame.seq, result.frame.ts, tr.box.as_list()))
