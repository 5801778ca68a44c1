"""Track lifecycle -> `Event` (start / update / end) and `ZoneChange` values (datatypes.py).

`EventStage` is a pipeline processor (FrameResult -> FrameResult, called in frame order on one
thread): it drops masked detections, feeds the tracker, and appends to `result.events`

- an `Event` per start, update and end of a watched object; `update` is made when the object
  enters a zone (at once) or its top score improved by `score_step` (at most once per
  `update_interval` s); with `required_zones` a track only starts once it has entered one of
  them;
- a `ZoneChange` when the number of confirmed objects standing in a zone changes.

Skipped frames (motion gate) pass through untouched: they say nothing about the objects.
The best frame of each track (highest score) is kept by reference and encoded once, at the
end, into full and cropped JPEGs: written to `snapshot_dir` (paths in the end event) and
carried by the end event as `Event.snapshot` for the MQTT side (never in the JSON lines).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

from .datatypes import BBox, EndReason, Event, FrameResult, Snapshot, ZoneChange
from .errors import EdgecamError
from .labels import slug
from .files import write_atomic
from .stages import Processor
from .tracker import Track, Tracker, centre
from .zones import Polygon, Zone, apply_masks, zone_counts, zones_of

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventOptions:
    """Which labels make events, zones and masks, and how often updates may be sent."""

    labels: Tuple[str, ...] = ()  # empty: every label
    zones: Tuple[Zone, ...] = ()
    masks: Tuple[Polygon, ...] = ()
    required_zones: Tuple[str, ...] = ()
    update_interval: float = 5.0
    score_step: float = 0.05
    snapshot_dir: Optional[str] = None
    snapshots: bool = False  # encode the best snapshot at the end even without a folder (MQTT)
    stationary_after: float = 10.0  # seconds without moving before an object stops forcing inference
    still_distance: float = 0.02  # centre movement (fraction of the frame) that counts as moving
    # Start only objects seen moving: centre moved by still_distance, or motion measured on at
    # least MOTION_SHARE of the box (FrameResult.motion). Off here; on in [track] by default.
    require_motion: bool = False


@dataclass
class _Best:
    score: float
    image: np.ndarray
    box: BBox
    seq: int


@dataclass
class _TrackState:
    started: bool = False
    zones: Tuple[str, ...] = ()
    entered: Tuple[str, ...] = ()
    last_event_ts: float = 0.0
    last_event_score: float = 0.0
    best: Optional[_Best] = None
    moved_ts: float = 0.0
    anchor: Tuple[float, float] = (0.0, 0.0)
    seen_moving: bool = False


class EventStage(Processor):
    """The tracking/event processor. `active` tells the motion gate to keep inferring."""

    def __init__(self, tracker: Tracker, options: EventOptions = EventOptions()):
        self.tracker, self.options = tracker, options
        known = {z.name for z in options.zones}
        missing = [z for z in options.required_zones if z not in known]
        if missing:
            raise EdgecamError(
                f"config [track] required_zones: unknown zone(s) {', '.join(missing)}; "
                f"define them under [track.zones]"
            )
        if options.snapshot_dir:
            try:
                Path(options.snapshot_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EdgecamError(
                    f"cannot create snapshot folder {options.snapshot_dir}: {exc.strerror}"
                ) from None
        self._state: Dict[str, _TrackState] = {}
        self._counts: Dict[Tuple[str, str], int] = {}
        self._now = 0.0
        self.started = 0
        self.ended = 0

    @property
    def active(self) -> bool:
        """True while a watched object is tracked that is new, moving, or missing (about to end):
        then every frame should be inferred. Objects standing still for `stationary_after`
        seconds (a parked car) do not count: the keep-alive inference is enough for them."""
        for t in self.tracker.tracks:
            if not self._watched(t.label):
                continue
            st = self._state.get(t.id)
            if (
                st is None
                or not t.confirmed
                or t.missed
                or self._now - st.moved_ts < self.options.stationary_after
            ):
                return True
        return False

    def watched_boxes(self) -> Tuple[Tuple[BBox, bool], ...]:
        """(predicted box, due) of the watched objects being tracked, for `[detect] regions =
        motion` (edgecam.regions.plan_motion): due while its track is tentative or the last
        inferred frame missed it. A track missed more than LOOK_AGAIN frames in a row is left
        out: where it was predicted is stale by then (the object left or stopped being seen),
        and motion brings a crop back if it moves again. Called from the inference thread."""
        return tuple(
            (t.predicted(), not t.confirmed or t.missed > 0)
            for t in list(self.tracker.tracks)
            if self._watched(t.label) and t.missed <= LOOK_AGAIN
        )

    def _watched(self, label: str) -> bool:
        return not self.options.labels or label in self.options.labels

    def __call__(self, result: FrameResult) -> FrameResult:
        if result.skipped:
            return result
        events = self.process(result)
        if not events:
            return result
        return dataclasses.replace(result, events=tuple(result.events) + tuple(events))

    def process(self, result: FrameResult) -> List[Union[Event, ZoneChange]]:
        """The events one inferred frame produces (state advances)."""
        o, frame = self.options, result.frame
        # Every label is tracked (so a flicker to another class does not split an object);
        # only watched ones make events.
        update = self.tracker.update(apply_masks(result.detections, o.masks), frame.ts)
        # Intervals use the monotonic clock: a Pi has no RTC and its wall clock jumps at NTP sync.
        self._now = frame.mono
        events: List[Union[Event, ZoneChange]] = []
        for t in update.alive:
            st = self._state.setdefault(t.id, _TrackState(moved_ts=frame.mono, anchor=centre(t.box)))
            if t.id not in update.matched:
                continue  # coasting: nothing new was seen
            if _distance(centre(t.box), st.anchor) > o.still_distance:
                st.anchor, st.moved_ts, st.seen_moving = centre(t.box), frame.mono, True
            st.seen_moving = st.seen_moving or _in_motion(t.box, result.motion)
            if not self._watched(t.label):
                continue
            if st.best is None or t.score > st.best.score:
                st.best = _Best(t.score, frame.image, t.box, frame.seq)
            st.zones = zones_of(t.box, t.label, o.zones)
            new_zones = tuple(z for z in st.zones if z not in st.entered)
            st.entered += new_zones
            if not t.confirmed:
                continue
            if not st.started:
                if o.required_zones and not any(z in o.required_zones for z in st.entered):
                    continue
                if o.require_motion and not st.seen_moving:
                    continue
                st.started = True
                self.started += 1
                events.append(self._event("start", t, st, frame.seq, None))
            elif new_zones:
                events.append(self._event("update", t, st, frame.seq, "zone"))
            elif (
                t.top_score >= st.last_event_score + o.score_step
                and self._now - st.last_event_ts >= o.update_interval
            ):
                events.append(self._event("update", t, st, frame.seq, "score"))
        for t in update.ended:
            st = self._state.pop(t.id, _TrackState())
            if st.started:
                self.ended += 1
                events.append(self._end(t, st, frame.seq, EndReason.ABSENT))
        for gone in set(self._state) - {t.id for t in update.alive}:
            del self._state[gone]  # tentative tracks that vanished
        events += self._zone_changes(update.alive, frame.ts)
        return events

    def finish(
        self, seq: Optional[int] = None, reason: EndReason = EndReason.SHUTDOWN
    ) -> List[Union[Event, ZoneChange]]:
        """End every started track now (e.g. at shutdown); returns their end events, and for a
        pause (reason `paused`) the zone counts going to 0."""
        events: List[Union[Event, ZoneChange]] = []
        for t in self.tracker.end_all():
            st = self._state.pop(t.id, _TrackState())
            if st.started:
                self.ended += 1
                events.append(self._end(t, st, seq, reason))
        self._state.clear()
        if reason is EndReason.PAUSED:
            # As every per-label count reads 0 during a long pause (docs/mqtt.md: Paused), so do the
            # zones; at other ends the last counts stay, like the per-label ones.
            events += self._zone_changes((), time.time())
        return events

    # -- internals ------------------------------------------------------------------------
    def _event(
        self, kind: str, t: Track, st: _TrackState, seq: Optional[int], reason: Optional[str]
    ) -> Event:
        st.last_event_ts, st.last_event_score = self._now, t.top_score
        return Event(
            kind,
            t.id,
            t.label,
            score=round(t.score, 4),
            top_score=round(t.top_score, 4),
            first_seen=round(t.first_seen, 3),
            last_seen=round(t.last_seen, 3),
            duration=round(t.last_seen - t.first_seen, 3),
            box=tuple(t.box.as_list()),
            zones=tuple(st.zones),
            entered_zones=tuple(st.entered),
            reason=reason,
            seq=seq,
        )

    def _end(self, t: Track, st: _TrackState, seq: Optional[int], reason: EndReason) -> Event:
        ev = self._event("end", t, st, seq, reason)
        if st.best is None or not (self.options.snapshots or self.options.snapshot_dir):
            return ev
        snap = encode_snapshot(st.best)
        paths: Dict[str, str] = {}
        if snap is not None and self.options.snapshot_dir:
            paths = write_snapshot(Path(self.options.snapshot_dir), t, snap)
        return dataclasses.replace(
            ev,
            snapshot=snap,
            snapshot_path=paths.get("snapshot"),
            snapshot_crop_path=paths.get("snapshot_crop"),
        )

    def _zone_changes(self, alive, ts: float) -> List[ZoneChange]:
        if not self.options.zones:
            return []
        counts = zone_counts(
            ((t.label, t.box) for t in alive if t.confirmed and self._watched(t.label)), self.options.zones
        )
        changed = []
        for key in sorted(set(counts) | set(self._counts)):
            if counts.get(key, 0) != self._counts.get(key, 0):
                changed.append(ZoneChange(key[0], key[1], counts.get(key, 0), round(ts, 3)))
        self._counts = counts
        return changed


LOOK_AGAIN = 2  # missed frames in a row after which a track's crop is no longer run
MOTION_SHARE = 0.1  # of an object's box: measured motion there means the object moved


def _in_motion(box: BBox, motion: Optional[Tuple[BBox, ...]]) -> bool:
    """True when the frame's measured motion covers at least MOTION_SHARE of `box` (a scene
    cut or an object walking in covers all of it; a branch brushing a corner does not)."""
    if not motion or box.area <= 0:
        return False
    return sum(box.intersect(m).area for m in motion) >= MOTION_SHARE * box.area


def _distance(a: Tuple[float, float], b: Tuple[float, float]) -> float:
    return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5


def crop_box(box: BBox, width: int, height: int, margin: float = 0.1) -> Tuple[int, int, int, int]:
    """Pixel corners of `box` grown by `margin` of its size on each side, clipped to the frame."""
    mx, my = box.width * margin, box.height * margin
    grown = BBox(box.x1 - mx, box.y1 - my, box.x2 + mx, box.y2 + my).clip()
    x1, y1, x2, y2 = grown.to_pixels(width, height)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def encode_snapshot(best: _Best, quality: int = 85) -> Optional[Snapshot]:
    """Full and cropped JPEGs of a track's best frame; None when it cannot be encoded."""
    from .annotate import encode_jpeg  # OpenCV: only when a track ends

    image = best.image
    h, w = image.shape[:2]
    x1, y1, x2, y2 = crop_box(best.box, w, h)
    try:
        full, crop = encode_jpeg(image, quality), encode_jpeg(image[y1:y2, x1:x2], quality)
    except ValueError:
        log.warning("could not encode the snapshot of frame %d", best.seq)
        return None
    return Snapshot(full, crop, best.score, best.seq)


def write_snapshot(folder: Path, t: Track, snap: Snapshot) -> Dict[str, str]:
    """Write `<label>-<id>.jpg` and `<label>-<id>-crop.jpg`; their paths for the end event."""
    paths = {}
    for key, suffix, data in (("snapshot", "", snap.full), ("snapshot_crop", "-crop", snap.crop)):
        path = folder / f"{slug(t.label)}-{t.id}{suffix}.jpg"
        try:
            write_atomic(path, data)
        except OSError as exc:
            log.warning("could not write snapshot %s: %s", path, exc.strerror)
            continue
        paths[key] = str(path)
    return paths


def stage_from_config(track_cfg, watch, snapshots: bool = False) -> EventStage:
    """The EventStage for a `[track]` config section; `watch` (detect.watch) picks the labels."""
    from .tracker import TrackerOptions

    base = TrackerOptions(
        min_hits=track_cfg.min_hits,
        min_age=track_cfg.min_age,
        max_missed=track_cfg.max_missed,
        max_lost=track_cfg.max_lost,
        iou=track_cfg.iou,
        max_distance=track_cfg.max_distance,
    )
    per_label = {label: dataclasses.replace(base, **dict(items)) for label, items in track_cfg.labels}
    options = EventOptions(
        labels=tuple(watch),
        zones=tuple(track_cfg.zones),
        masks=tuple(track_cfg.masks),
        required_zones=tuple(track_cfg.required_zones),
        update_interval=track_cfg.update_interval,
        snapshot_dir=track_cfg.snapshot_dir,
        snapshots=snapshots,
        require_motion=track_cfg.require_motion,
    )
    return EventStage(Tracker(base, per_label), options)
