"""Value types passed between stages: boxes, detections, frames, results, events.

All are frozen dataclasses but one: `FrameResult`, whose `annotated` field is the drawing
`annotate.Annotator` fills in at most once (under its lock), so that every sink shares one
drawing. Nothing else in edgecam assigns to a FrameResult after making it: a stage that
adds to a result (events) makes a new one with `dataclasses.replace`. The numpy images
they carry are not written to after capture (drawing works on a copy).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

import numpy as np


@dataclass(frozen=True)
class BBox:
    """An axis-aligned box in normalised coordinates (0..1 of the frame), x1 < x2, y1 < y2."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        """Width as a fraction of the frame width."""
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        """Height as a fraction of the frame height."""
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        """Area as a fraction of the frame area (0 for an empty box)."""
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def valid(self) -> bool:
        """True when the box has a positive width and height."""
        return self.x2 > self.x1 and self.y2 > self.y1

    @property
    def bottom_centre(self) -> Tuple[float, float]:
        """The point an object stands on: used to decide which zone it is in."""
        return ((self.x1 + self.x2) / 2.0, self.y2)

    def clip(self) -> "BBox":
        """This box clipped to the frame."""
        c = lambda v: min(1.0, max(0.0, v))  # noqa: E731
        return BBox(c(self.x1), c(self.y1), c(self.x2), c(self.y2))

    def intersect(self, other: "BBox") -> "BBox":
        """The overlap of two boxes (possibly empty: check `valid`)."""
        return BBox(
            max(self.x1, other.x1), max(self.y1, other.y1), min(self.x2, other.x2), min(self.y2, other.y2)
        )

    def iou(self, other: "BBox") -> float:
        """Intersection over union, 0 when the boxes do not overlap."""
        inter = self.intersect(other).area
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_pixels(self, width: int, height: int) -> Tuple[int, int, int, int]:
        """Pixel corners (x1, y1, x2, y2) in a frame of the given size."""
        return (
            int(round(self.x1 * width)),
            int(round(self.y1 * height)),
            int(round(self.x2 * width)),
            int(round(self.y2 * height)),
        )

    def as_list(self, ndigits: int = 4) -> list:
        """[x1, y1, x2, y2] rounded, for JSON."""
        return [
            round(self.x1, ndigits),
            round(self.y1, ndigits),
            round(self.x2, ndigits),
            round(self.y2, ndigits),
        ]


@dataclass(frozen=True)
class Detection:
    """One detected object: what it is, how sure, and where (normalised to the original frame)."""

    label: str
    class_id: int
    score: float
    bbox: BBox

    def to_dict(self, width: Optional[int] = None, height: Optional[int] = None) -> dict:
        """JSON form: label, class_id, score, normalised box, and pixel box when a size is given."""
        d = {
            "label": self.label,
            "class_id": int(self.class_id),
            "score": round(float(self.score), 4),
            "box": self.bbox.as_list(),
        }
        if width and height:
            d["box_px"] = list(self.bbox.to_pixels(width, height))
        return d


@dataclass(frozen=True)
class SensorDetections:
    """Detections a camera made itself for one frame (the IMX500 runs its network on the
    sensor): every candidate, unfiltered, boxes already in the frame's main image, and the
    sensor's own DNN and DSP times in ms when it reported them."""

    candidates: Tuple[Detection, ...]
    dnn_ms: Optional[float] = None
    dsp_ms: Optional[float] = None


@dataclass(frozen=True)
class DetectOptions:
    """Which detections are kept, and how frames are fitted to the model input."""

    threshold: float = 0.5
    classes: Tuple[str, ...] = ()
    max_detections: int = 20
    min_area: float = 0.0
    resize: str = "stretch"


@dataclass(frozen=True)
class Frame:
    """A captured image (BGR, HxWx3 uint8) with its sequence number and capture time.

    `ts` is wall-clock time (for publishing), `mono` the monotonic clock at capture (for
    measuring latency). `model_input` is an optional image already at the model's input size,
    e.g. picamera2's low-resolution stream, so the CPU need not resize. `detected` holds what
    a camera that detects on its sensor reported with the frame; None when it reported
    nothing (no information) or the camera does not detect.
    """

    seq: int
    ts: float
    mono: float
    image: np.ndarray
    source: str = ""
    model_input: Optional[np.ndarray] = None
    detected: Optional[SensorDetections] = None

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.image.shape[0])


@dataclass(frozen=True)
class Snapshot:
    """The best frame of a track as JPEGs: the whole frame and the object's crop."""

    full: bytes
    crop: bytes
    score: float
    seq: int


class EndReason(str, enum.Enum):
    """Why an event ended: the `reason` of an `end` event, which the payloads carry as the
    value ("shutdown", ...). A str, so it compares, hashes and serialises as that value."""

    ABSENT = "absent"  # not seen for the configured frames or time
    SHUTDOWN = "shutdown"  # the run ended
    CAMERA_OFFLINE = "camera_offline"  # the live source was lost
    PAUSED = "paused"  # detection stayed switched off past the off delay
    RESTART = "restart"  # found open in the spool when the service started again

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Event:
    """One step of what is in view: `start`, `update` (it entered a zone, or its top score
    rose) or `end` (with the reason). The one event type, made in the pipeline and only
    formatted by the sinks: the `--json` event line and the `<prefix>/events` message.

    Two processors make them: events.EventStage per tracked object (`box`, zones, and at the
    end the best crop), and label_events.LabelEvents per watched label when nothing is
    tracked (a start when the label has been seen for some frames, an end when it has been
    gone for some; no box, no zones, no updates). For a label's end, `last_seen` is when its
    absence was decided.

    Times are unix seconds and scores rounded as published. `snapshot` (end events only) is
    the track's best frame as JPEGs; it is not part of the JSON line, which names the files
    written instead (`snapshot_path`, `snapshot_crop_path`).
    """

    kind: str
    id: str
    label: str
    score: float
    top_score: float
    first_seen: float
    last_seen: float
    duration: float
    box: Optional[Tuple[float, ...]] = None
    zones: Tuple[str, ...] = ()
    entered_zones: Tuple[str, ...] = ()
    reason: Optional[str] = None
    seq: Optional[int] = None
    snapshot_path: Optional[str] = None
    snapshot_crop_path: Optional[str] = None
    snapshot: Optional[Snapshot] = field(default=None, repr=False, compare=False)
    # End events with [clips] on: the clip's file name in the clips folder, its planned
    # length, and with [web] on its URL on the preview server (edgecam.clips.plan).
    clip: Optional[str] = None
    clip_seconds: Optional[float] = None
    clip_url: Optional[str] = None

    @property
    def tracked(self) -> bool:
        """True for a tracked object's event (it has a box), False for a label's."""
        return self.box is not None

    def to_json(self) -> dict:
        """The `--json` event line (contract: see docs/events.md)."""
        d = {
            "type": "event",
            "event": self.kind,
            "id": self.id,
            "label": self.label,
            "score": self.score,
            "top_score": self.top_score,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "duration": self.duration,
        }
        if self.box is not None:
            d.update(box=list(self.box), zones=list(self.zones), entered_zones=list(self.entered_zones))
        d.update(reason=self.reason, seq=self.seq)
        if self.snapshot_path is not None:
            d["snapshot"] = self.snapshot_path
        if self.snapshot_crop_path is not None:
            d["snapshot_crop"] = self.snapshot_crop_path
        if self.clip is not None:
            d.update(clip=self.clip, clip_seconds=self.clip_seconds)
            if self.clip_url is not None:
                d["clip_url"] = self.clip_url
        return d


@dataclass(frozen=True)
class ZoneChange:
    """The number of confirmed `label` objects standing in `zone` changed to `count`."""

    zone: str
    label: str
    count: int
    ts: float

    def to_json(self) -> dict:
        """The `--json` zone line (contract: see docs/events.md)."""
        return {"type": "zone", "zone": self.zone, "label": self.label, "count": self.count, "ts": self.ts}


@dataclass(frozen=True)
class CountChange:
    """The number of watched `label` detections in view changed to `count` (made by
    label_events.LabelEvents; every count reads 0 once a pause has lasted the off delay)."""

    label: str
    count: int
    ts: float


@dataclass(frozen=True)
class OccupancyChange:
    """A watched label's occupancy turned on (`occupied`) or off (label_events.LabelEvents:
    on once the label is confirmed, off only `occupancy_off_delay` s after its last sighting,
    and at a clean stop)."""

    label: str
    occupied: bool


StageEvent = Union[Event, ZoneChange, CountChange, OccupancyChange]
"""What the processors put on `FrameResult.events`, for the sinks to format and deliver."""


class FrameState(enum.Enum):
    """What a FrameResult says about its frame: one state, so no two flags can disagree."""

    # The detector ran on the frame: `detections` is what it found.
    INFERRED = "inferred"
    # Not inferred (detection switched off, motion gating): the sinks get it with no
    # detections, and nothing about the scene is concluded from it.
    SKIPPED = "skipped"
    # The detector had nothing to say (an IMX500 frame whose metadata has no outputs yet):
    # not "nothing there", so it goes to no processor and no sink.
    NO_INFORMATION = "no_information"
    # Carries only the events that closing produced (tracks ended at shutdown or on a camera
    # loss), to the sinks that take them; its frame was already delivered.
    FLUSH = "flush"


@dataclass
class FrameResult:
    """A frame with what the detector found in it and how long each stage took (ms).

    Not frozen for one field: `annotated`, the drawn image, filled in once by
    annotate.Annotator (see the module docstring).
    """

    frame: Frame
    detections: Tuple[Detection, ...]
    inference_ms: float
    timings: Dict[str, float] = field(default_factory=dict)
    annotated: Optional[np.ndarray] = None
    state: FrameState = FrameState.INFERRED
    events: Tuple[StageEvent, ...] = ()
    # How many times the model ran on this frame: 1, plus one per crop (edgecam.regions).
    invokes: int = 0
    # Where the frame moved (normalised boxes, edgecam.motion), when motion was measured.
    motion: Optional[Tuple[BBox, ...]] = None

    @property
    def skipped(self) -> bool:
        """True when the detector did not run on the frame (any state but INFERRED)."""
        return self.state is not FrameState.INFERRED

    def to_json(self) -> dict:
        """The `--json` frame line (contract: see docs/configuration.md, Output)."""
        f = self.frame
        return {
            "type": "frame",
            "seq": f.seq,
            "ts": round(f.ts, 3),
            "source": f.source,
            "width": f.width,
            "height": f.height,
            "inference_ms": round(self.inference_ms, 2),
            "detections": [d.to_dict() for d in self.detections],
        }
