"""Where in a frame the detector looks: the whole frame, crops around motion and tracked
objects, or a fixed grid of tiles; and how the boxes found in each crop are mapped back to
the frame and merged (pure functions over immutable values, in the manner of pycoral's
`adapters/detect.py`).

A 300x300 model sees a 1280x720 frame at a quarter of its width: a person 60 px tall there is
14 px in the model's input, below what SSD MobileNet finds. A crop around that person, about
2.5 times its size and never less than half the model's side, is fitted to the model input
at 1x to 2x instead (Frigate runs its model on regions around motion for the same reason).

The model's cap (10 boxes) then applies per crop, not per frame. Boxes from all passes are
merged by class-aware non-maximum suppression (OpenCV's `cv2.dnn.NMSBoxesBatched`) at SSD's
own IoU (0.6: within one pass it changes nothing, across passes it keeps one box per
object), then a box lying almost wholly inside a larger, better-scoring one of the same label
is dropped as a part of that object (SSD's box on a person's upper half) — unless the larger
box holds another such box: then it is SSD's box around a group (two cats crossing), and
the boxes inside it are the objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from .datatypes import BBox, Detection

REGION_MODES = ("full", "motion", "tiles")
"""`[detect] regions`: the whole frame only; plus crops around motion and tracked objects;
plus a fixed grid of tiles."""

REGION_SCALE = 2.5  # a crop's side, in multiples of the object's (or motion's) larger side
MOTION_MARGIN = 1.2  # a crop around a moving blob is this much longer than the blob
MIN_UPSCALE = 2.0  # a crop is at least the model's side / this: it is enlarged at most 2x
TILE_OVERLAP = 0.2  # of a tile's side: an object this wide on a seam is whole in one tile
DUPLICATE_IOU = 0.6  # same-label boxes overlapping this much are one object (SSD's own NMS)
CONTAINED = 0.9  # a same-label box this much inside a larger one is part of it (Frigate: 0.9)
MIN_PART = 0.05  # ... unless it is this small beside it (a car far behind a near one)
EDGE = 0.01  # of a crop's side: a box this close to an inner edge of a crop is cut by it


@dataclass(frozen=True)
class Region:
    """A rectangle of a frame's pixels (x1, y1 inclusive, x2, y2 exclusive) run through the
    model on its own, in a frame of `frame_w` x `frame_h` pixels."""

    x1: int
    y1: int
    x2: int
    y2: int
    frame_w: int
    frame_h: int

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) in pixels."""
        return self.x2 - self.x1, self.y2 - self.y1

    @property
    def is_full(self) -> bool:
        """True for the region that is the whole frame."""
        return (self.x1, self.y1, self.x2, self.y2) == (0, 0, self.frame_w, self.frame_h)

    @property
    def box(self) -> BBox:
        """The region as a box normalised to the frame."""
        return BBox(
            self.x1 / self.frame_w, self.y1 / self.frame_h, self.x2 / self.frame_w, self.y2 / self.frame_h
        )

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The region's pixels of `image` (a view, not a copy)."""
        return image[self.y1 : self.y2, self.x1 : self.x2]

    def to_frame(self, box: BBox) -> BBox:
        """A box normalised to this region as one normalised to the frame."""
        (w, h) = self.size
        sx, sy = w / self.frame_w, h / self.frame_h
        ox, oy = self.x1 / self.frame_w, self.y1 / self.frame_h
        return BBox(ox + box.x1 * sx, oy + box.y1 * sy, ox + box.x2 * sx, oy + box.y2 * sy)

    def cuts(self, box: BBox) -> bool:
        """True when a box normalised to this region touches one of its edges that lies inside
        the frame: the object probably goes on beyond the crop, and the box holds only part."""
        e = EDGE
        return (
            (box.x1 <= e and self.x1 > 0)
            or (box.y1 <= e and self.y1 > 0)
            or (box.x2 >= 1 - e and self.x2 < self.frame_w)
            or (box.y2 >= 1 - e and self.y2 < self.frame_h)
        )


def full_region(frame_w: int, frame_h: int) -> Region:
    """The whole frame as a region."""
    return Region(0, 0, frame_w, frame_h, frame_w, frame_h)


def min_side(input_size: Tuple[int, int]) -> int:
    """The smallest crop side for a model input (width, height): enlarged at most MIN_UPSCALE."""
    return int(math.ceil(max(input_size) / MIN_UPSCALE))


def region_around(
    box: BBox, frame_w: int, frame_h: int, smallest: int, scale: float = REGION_SCALE
) -> Region:
    """A square crop centred on an object's `box` (normalised), `scale` times its larger side in
    pixels and at least `smallest`, moved (not cut) to lie inside the frame; never larger
    than the frame's shorter side."""
    bw, bh = box.width * frame_w, box.height * frame_h
    return _square(box, frame_w, frame_h, max(smallest, scale * max(bw, bh)))


def region_for_motion(
    box: BBox, frame_w: int, frame_h: int, smallest: int, scale: float = REGION_SCALE
) -> Region:
    """A square crop for a moving blob: `scale` times its smaller side, and wide enough to hold
    it with a margin. A blob trails behind what moves (the background learns the object's old
    place slowly), so along the motion it is longer than the object; across, it is as wide."""
    bw, bh = box.width * frame_w, box.height * frame_h
    return _square(box, frame_w, frame_h, max(smallest, scale * min(bw, bh), MOTION_MARGIN * max(bw, bh)))


def _square(box: BBox, frame_w: int, frame_h: int, side: float) -> Region:
    side = int(round(min(side, frame_w, frame_h)))
    cx, cy = (box.x1 + box.x2) / 2 * frame_w, (box.y1 + box.y2) / 2 * frame_h
    x1 = int(round(min(max(cx - side / 2, 0), frame_w - side)))
    y1 = int(round(min(max(cy - side / 2, 0), frame_h - side)))
    return Region(x1, y1, x1 + side, y1 + side, frame_w, frame_h)


def _share_inside(box: BBox, region: Region) -> float:
    inner = box.intersect(region.box).area
    return inner / box.area if box.area > 0 else 1.0


def plan_motion(
    frame_w: int,
    frame_h: int,
    input_size: Tuple[int, int],
    tracked: Sequence[Tuple[BBox, bool]],
    moving: Sequence[BBox],
    max_regions: int,
    turn: int = 0,
) -> Tuple[Region, ...]:
    """Crops to run beside the full frame: around the tracked objects that are due first, then
    around motion no tracked object explains, largest first.

    `tracked` holds (predicted box, due) per object: an object is due when the last frame did
    not find it (and every frame while its track is tentative), so a confirmed object the crops
    found is looked at every other frame, coasting in between (edgecam.events.EventStage
    decides). Motion mostly (80 %) inside a tracked object's crop, due or not, is that object.
    A box whose crop would be as large as the frame's shorter side is left to the full-frame
    pass; at most `max_regions` crops. When motion outnumbers the crops left, the blobs take
    turns (`turn`: the frame's number).
    """
    smallest = min_side(input_size)
    limit = min(frame_w, frame_h)
    chosen: List[Region] = []
    explained: List[Region] = []

    def inside_one(box: BBox, regions: Sequence[Region]) -> bool:
        return any(_share_inside(box, r) >= 0.8 for r in regions)

    for box, due in tracked:
        if not box.valid:
            continue
        region = region_around(box, frame_w, frame_h, smallest)
        if max(region.size) >= limit:
            continue
        explained.append(region)
        if due and len(chosen) < max_regions and not inside_one(box, chosen):
            chosen.append(region)
    unexplained = [
        b for b in sorted(moving, key=lambda b: -b.area) if b.valid and not inside_one(b, explained)
    ]
    if unexplained and len(unexplained) > max_regions - len(chosen):
        # More motion than crops: each blob gets its turn over the next frames.
        k = turn % len(unexplained)
        unexplained = unexplained[k:] + unexplained[:k]
    for box in unexplained:
        if len(chosen) >= max_regions:
            break
        if inside_one(box, chosen):
            continue
        region = region_for_motion(box, frame_w, frame_h, smallest)
        if max(region.size) < limit:
            chosen.append(region)
    return tuple(chosen)


def plan_tiles(frame_w: int, frame_h: int, side: int, overlap: float = TILE_OVERLAP) -> Tuple[Region, ...]:
    """A grid of square tiles of `side` pixels (at most the frame's shorter side) covering the
    frame, neighbours overlapping by at least `overlap` of a side, spread evenly; none when
    one tile would be the whole frame (the full-frame pass is that tile)."""
    side = max(1, min(side, frame_w, frame_h))
    if side >= frame_w and side >= frame_h:
        return ()

    def starts(length: int) -> List[int]:
        if side >= length:
            return [0]
        n = int(math.ceil((length - side * overlap) / (side * (1 - overlap))))
        n = max(n, 2)
        return [int(round(i * (length - side) / (n - 1))) for i in range(n)]

    return tuple(
        Region(x, y, x + side, y + side, frame_w, frame_h) for y in starts(frame_h) for x in starts(frame_w)
    )


@dataclass(frozen=True)
class RegionPlan:
    """Which crops a `[detect] regions` mode runs on a frame beside the whole of it (called by
    the pipeline with the frame's size and where it moved). `tracked()` gives (predicted box,
    due) of the objects being tracked, read from the tracking stage (see plan_motion)."""

    mode: str
    input_size: Tuple[int, int]
    max_regions: int = 4
    tile_size: int = 0  # tiles' side in pixels; 0: the model input's larger side
    tracked: Callable[[], Sequence[Tuple[BBox, bool]]] = field(default=lambda: (), compare=False)

    @property
    def follows_tracks(self) -> bool:
        """True when the crops depend on the tracks (mode `motion`): the pipeline then plans
        a frame once the frames before it went through the tracker."""
        return self.mode == "motion"

    def __call__(
        self, frame_w: int, frame_h: int, moving: Sequence[BBox] = (), turn: int = 0
    ) -> Tuple[Region, ...]:
        """The crops for one frame (none in mode `full`); `turn` is its number."""
        if self.mode == "motion":
            return plan_motion(
                frame_w, frame_h, self.input_size, tuple(self.tracked()), moving, self.max_regions, turn
            )
        if self.mode == "tiles":
            return plan_tiles(frame_w, frame_h, self.tile_size or max(self.input_size))
        return ()


def runs_per_frame(
    frame_w: int, frame_h: int, input_size: Tuple[int, int], max_regions: int = 4, tile_size: int = 0
) -> Dict[str, Tuple[int, int]]:
    """(fewest, most) model runs per frame of each mode at this frame size (`edgecam probe`):
    `motion` runs the whole frame alone while nothing small moves or is tracked."""
    tiles = 1 + len(plan_tiles(frame_w, frame_h, tile_size or max(input_size)))
    return {"full": (1, 1), "motion": (1, 1 + max_regions), "tiles": (tiles, tiles)}


def from_region(region: Region, detections: Iterable[Detection]) -> Tuple[Detection, ...]:
    """A crop's detections (boxes normalised to the crop) in frame coordinates; boxes cut by an
    inner edge of the crop are dropped (the full frame, or a neighbouring tile, sees that
    object whole). Measured: keeping them for crops around motion lost an object of
    scenes.twelve_objects and added starts (part and whole tracked apart)."""
    if region.is_full:
        return tuple(detections)
    return tuple(
        Detection(d.label, d.class_id, d.score, region.to_frame(d.bbox).clip())
        for d in detections
        if not region.cuts(d.bbox)
    )


def suppress_duplicates(
    detections: Sequence[Detection], iou: float = DUPLICATE_IOU, contained: float = CONTAINED
) -> Tuple[Detection, ...]:
    """One box per object, best first: class-aware non-maximum suppression at `iou` (OpenCV),
    then a box lying `contained` or more inside a larger, better-scoring box of the same label
    that holds no other such box is dropped (see the module docstring)."""
    if len(detections) < 2:
        return tuple(detections)
    xywh = np.array([(d.bbox.x1, d.bbox.y1, d.bbox.width, d.bbox.height) for d in detections], np.float64)
    scores = np.array([d.score for d in detections], np.float32)
    classes = np.array([d.class_id for d in detections], np.int32)
    kept = np.asarray(cv2_nms(xywh, scores, classes, iou), np.int64).reshape(-1)
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    return tuple(detections[i] for i in _drop_contained(xywh, classes, kept, contained))


def cv2_nms(xywh: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float):
    """Indices kept by OpenCV's class-aware NMS (boxes as x, y, w, h)."""
    import cv2

    return cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), classes.tolist(), 0.0, iou)


def _drop_contained(xywh: np.ndarray, classes: np.ndarray, order: np.ndarray, contained: float) -> List[int]:
    # `order` is best first, so j < i means box j scores at least as well as box i.
    x1, y1 = xywh[order, 0], xywh[order, 1]
    x2, y2 = x1 + xywh[order, 2], y1 + xywh[order, 3]
    area = xywh[order, 2] * xywh[order, 3]
    iw = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inside = iw * ih / np.maximum(area[:, None], 1e-12)  # [i, j]: share of box i inside box j
    same = classes[order][:, None] == classes[order][None]
    larger = (area[None] > area[:, None]) & (area[:, None] >= MIN_PART * area[None])
    part = (inside >= contained) & same & larger  # [i, j]: box i is a part of box j
    group = part.sum(axis=0) >= 2  # box j holds two or more: SSD's box around a group
    better = np.tri(len(order), k=-1, dtype=bool)  # [i, j]: j < i
    dropped = (part & better & ~group[None]).any(axis=1)
    return [int(i) for i, drop in zip(order, dropped) if not drop]
