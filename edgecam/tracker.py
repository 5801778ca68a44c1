"""Associate detections across frames into tracked objects with stable ids.

A greedy matcher (no scipy needed): every same-label (track, detection) pair is scored by the
IoU of the detection with the track's predicted box (last box moved by its velocity), or, when
they do not overlap enough, by centre distance; the best pairs are taken first. Predicting the
box keeps ids when two objects cross: each track looks for its object where it is heading.

A track is tentative until it was matched in `min_hits` frames in a row spanning `min_age`
seconds, then confirmed (its label settled by a score-weighted vote of its boxes); a confirmed
track coasts through misses and is dropped once it has gone unmatched for more than
`max_missed` inferred frames and more than `max_lost` seconds. Times are the frames' `ts`: the
source's time for files, so the rules read the same at 10 and 30 fps and however fast a file
is processed. Frames whose inference was skipped are not fed here at all: they carry no
information about the objects.

Rules measured by scripts/bench_events.py (docs/events.md has the table): a confirmed track
never takes another label's box (its box, label and score stay); such a box lying on it only
keeps it seen for a frame or two (SSD's label flicker on one object), and still starts or
feeds a track of its own label; only tracks matched this frame, of the same label, keep a
new box from starting a track (never a coasting one).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .datatypes import BBox, Detection


# A coasting track is predicted along its velocity for at most this many frames, then waits
# there: the boxes of a partly hidden object drift (it shrinks behind whatever passes in front),
# and extrapolating that drift loses a sitting dog behind a passing one (scripts/bench_events.py,
# scene_cut: 1.2 starts per object with 5 frames or unlimited, 1.0 with 1, 2 or 3).
PREDICT_FRAMES = 2

# A started track is kept seen by another label's box on it for at most this many frames in a
# row without its own: SSD's flicker on one object lasts a frame or two (twelve_objects), and a
# box that stays another label longer is another object (a scene cut to a person where a cat
# sat), which must not keep the cat's track, and its event, going.
FLICKER_FRAMES = 3


@dataclass(frozen=True)
class TrackerOptions:
    """How detections are associated and when a track starts and ends."""

    min_hits: int = 3
    min_age: float = 0.4  # seconds a track must be seen for (every frame) before it is confirmed
    max_missed: int = 10
    max_lost: float = 2.0  # seconds a confirmed track may also coast beyond max_missed frames
    iou: float = 0.3
    max_distance: float = 0.15  # centre distance (fraction of the frame diagonal) still matched
    contained: float = 0.5  # unmatched boxes this much covered by tracked ones start no track
    relabel_iou: float = 0.5  # another label's box this much on a track is taken as its object


@dataclass
class Track:
    """One tracked object's state (owned and mutated by the Tracker only)."""

    id: str
    label: str
    box: BBox
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    missed: int = 0
    missed_own: int = 0  # inferred frames since a box of its own label was matched
    confirmed: bool = False
    top_score: float = 0.0
    velocity: Tuple[float, float] = (0.0, 0.0)
    votes: Dict[str, float] = field(default_factory=dict)  # label -> summed score
    extra: Dict[str, object] = field(default_factory=dict)  # per-track state of later stages

    def predicted(self) -> BBox:
        """Where the box should be this frame, assuming constant velocity since the last match."""
        steps = min(self.missed + 1, PREDICT_FRAMES)
        dx, dy = self.velocity[0] * steps, self.velocity[1] * steps
        b = self.box
        return BBox(b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy)


def centre(box: BBox) -> Tuple[float, float]:
    """The centre point of a box."""
    return ((box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0)


def centre_distance(a: BBox, b: BBox) -> float:
    """Distance between box centres as a fraction of the frame diagonal."""
    (ax, ay), (bx, by) = centre(a), centre(b)
    return math.hypot(ax - bx, ay - by) / math.sqrt(2.0)


def match(
    predicted: Sequence[BBox],
    detected: Sequence[BBox],
    iou_threshold: float,
    max_distance: float,
    same_label: Optional[Sequence[Sequence[bool]]] = None,
    relabel_iou: float = 0.5,
    settled: Optional[Sequence[bool]] = None,
) -> Tuple[List[Tuple[int, int]], List[int], List[int]]:
    """Greedy one-to-one assignment of detections to tracks.

    Returns (pairs of (track index, detection index), unmatched tracks, unmatched detections).
    Same-label pairs with IoU >= `iou_threshold` are taken first (highest IoU first), then
    same-label pairs whose centres are within `max_distance` (nearest first), then pairs of
    different labels overlapping by at least `relabel_iou`: SSD models flicker between
    similar classes (dog/person/kite on a small dog), which must not split one object into
    two tracks. Among those, the tracks whose label is `settled` (started tracks; default:
    none) are served first: a track that has just appeared on another label's box must not
    take the flicker away from the object's own track.
    `same_label[t][d]` says whether track t and detection d have the same label (default: all).
    """
    candidates = []
    for t, p in enumerate(predicted):
        cross = 2 if settled is not None and settled[t] else 3
        for d, box in enumerate(detected):
            iou = p.iou(box)
            if same_label is not None and not same_label[t][d]:
                if iou >= max(relabel_iou, iou_threshold):
                    candidates.append((cross, -iou, t, d))
            elif iou >= iou_threshold:
                candidates.append((0, -iou, t, d))
            else:
                dist = centre_distance(p, box)
                if dist <= max_distance:
                    candidates.append((1, dist, t, d))
    candidates.sort()
    pairs, used_t, used_d = [], set(), set()
    for _, _, t, d in candidates:
        if t not in used_t and d not in used_d:
            pairs.append((t, d))
            used_t.add(t)
            used_d.add(d)
    return (
        pairs,
        [t for t in range(len(predicted)) if t not in used_t],
        [d for d in range(len(detected)) if d not in used_d],
    )


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame changed: tracks newly confirmed, still alive (matched or coasting),
    and ended (confirmed tracks dropped after too many misses; tentative ones vanish silently)."""

    confirmed: Tuple[Track, ...]
    alive: Tuple[Track, ...]
    ended: Tuple[Track, ...]
    matched: Dict[str, Detection]


class Tracker:
    """Tracks of every label; `update()` once per inferred frame, in frame order."""

    def __init__(
        self,
        options: TrackerOptions = TrackerOptions(),
        per_label: Optional[Mapping[str, TrackerOptions]] = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
    ):
        self.options = options
        self.per_label = dict(per_label or {})
        self._new_id = new_id
        self.tracks: List[Track] = []

    def options_for(self, label: str) -> TrackerOptions:
        """The options of one label (its override, else the defaults)."""
        return self.per_label.get(label, self.options)

    @property
    def active(self) -> bool:
        """True while any track (tentative or confirmed) exists."""
        return bool(self.tracks)

    def update(self, detections: Sequence[Detection], ts: float) -> TrackUpdate:
        """Feed one inferred frame's detections (already masked) at time `ts`."""
        confirmed: List[Track] = []
        ended: List[Track] = []
        matched: Dict[str, Detection] = {}
        survivors: List[Track] = []
        flickers: List[Tuple[int, int]] = []  # (started track, another label's box on it)
        tracks, dets = self.tracks, list(detections)
        # Each track matches with its own label's options; the strictest wins across labels.
        opts = [self.options_for(t.label) for t in tracks]
        iou = min((o.iou for o in opts), default=self.options.iou)
        dist = max((o.max_distance for o in opts), default=self.options.max_distance)
        same = [[t.label == d.label for d in dets] for t in tracks]
        pairs, lost, new = match(
            [t.predicted() for t in tracks],
            [d.bbox for d in dets],
            iou,
            dist,
            same,
            relabel_iou=self.options.relabel_iou,
            settled=[t.confirmed for t in tracks],
        )
        for ti, di in pairs:
            t, d = tracks[ti], dets[di]
            o = opts[ti]
            if t.confirmed and d.label != t.label:
                flickers.append((ti, di))
                continue
            if (
                d.label == t.label
                and d.bbox.iou(t.predicted()) < o.iou
                and centre_distance(d.bbox, t.predicted()) > o.max_distance
            ):
                lost.append(ti)  # only within another label's looser limits
                new.append(di)
                continue
            self._hit(t, d, ts)
            matched[t.id] = d
            if not t.confirmed and t.hits >= o.min_hits and ts - t.first_seen >= o.min_age - 1e-6:
                t.confirmed = True
                confirmed.append(t)
            survivors.append(t)
        # Once a track has started, its label is settled. Another label's box lying on it keeps
        # it seen for a few frames: the same small dog read as a person for a frame
        # (scripts/bench_events.py, twelve_objects: 16-22 ID switches between a dog and a
        # person track without this). Not when the box lies on an object seen this frame (a
        # passing dog partly read as a person, over the sitting dog it hides). Only seen: its
        # box, score and label stay, and for the later stages it is coasting (no motion, zone
        # or snapshot from a box that may be another object's, as at a scene cut). The box
        # goes on to start or feed a track of its own label (a person walking up to a parked
        # cat), which starts on its own evidence and then holds that box first.
        seen = [t.box for t in tracks if t.id in matched] if flickers else []
        for ti, di in flickers:
            t, d = tracks[ti], dets[di]
            on_another = sum(d.bbox.intersect(b).area for b in seen) >= self.options.contained * d.bbox.area
            if on_another or t.missed_own >= FLICKER_FRAMES:
                lost.append(ti)
            else:
                t.last_seen, t.missed = ts, 0
                t.missed_own += 1
                survivors.append(t)
            new.append(di)
        for ti in lost:
            t, o = tracks[ti], opts[ti]
            t.missed += 1
            t.missed_own += 1
            # A tentative track must be seen every frame; a confirmed one may coast.
            if not t.confirmed or (t.missed > o.max_missed and not 0.0 <= ts - t.last_seen <= o.max_lost):
                if t.confirmed:
                    ended.append(t)
                continue
            survivors.append(t)
        # Only what is seen this frame, of the same label, can explain a new box away: a coasting
        # track is a guess (the object may be gone: a scene cut), and another label's box is
        # another object (a dog beside its owner).
        held = [(t.label, t.box) for t in survivors if t.id in matched]
        c = self.options.contained
        for di in sorted(new, key=lambda i: -dets[i].score):
            d = dets[di]
            # SSD often adds a box on part of an object already tracked, or one box around two
            # overlapping objects: neither is a new object.
            if sum(d.bbox.intersect(b).area for label, b in held if label == d.label) >= c * d.bbox.area:
                continue
            t = Track(
                self._new_id(),
                d.label,
                d.bbox,
                float(d.score),
                ts,
                ts,
                top_score=float(d.score),
                votes={d.label: float(d.score)},
            )
            matched[t.id] = d
            held.append((t.label, t.box))
            o = self.options_for(d.label)
            if o.min_hits <= 1 and o.min_age <= 0:
                t.confirmed = True
                confirmed.append(t)
            survivors.append(t)
        self.tracks = survivors
        return TrackUpdate(tuple(confirmed), tuple(survivors), tuple(ended), matched)

    @staticmethod
    def _hit(t: Track, d: Detection, ts: float) -> None:
        (ox, oy), (nx, ny) = centre(t.box), centre(d.bbox)
        steps = t.missed + 1
        vx, vy = (nx - ox) / steps, (ny - oy) / steps
        # Smoothed so one jittery box does not throw the prediction off.
        t.velocity = (0.5 * t.velocity[0] + 0.5 * vx, 0.5 * t.velocity[1] + 0.5 * vy)
        t.box, t.score, t.last_seen = d.bbox, float(d.score), ts
        t.top_score = max(t.top_score, float(d.score))
        t.votes[d.label] = t.votes.get(d.label, 0.0) + float(d.score)
        if not t.confirmed:  # the label is settled by score-weighted vote until the track starts
            t.label = max(t.votes, key=t.votes.__getitem__)
        t.hits += 1
        t.missed = t.missed_own = 0

    def end_all(self) -> Tuple[Track, ...]:
        """Drop every track (e.g. at shutdown); returns the confirmed ones, which had started."""
        ended = tuple(t for t in self.tracks if t.confirmed)
        self.tracks = []
        return ended
