"""Zones and masks: polygons in normalised frame coordinates, tested against an object's
bottom-centre point (where it stands), so a person's head over a line does not count.

Pure geometry with no heavy imports: the config module uses the parsers here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Sequence, Tuple

from .errors import EdgecamError

Point = Tuple[float, float]
Polygon = Tuple[Point, ...]


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """True when `point` lies inside `polygon` (even-odd ray casting; edges count as inside
    only on the lower/left side, so adjacent zones never both claim a point on their border)."""
    x, y = point
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross_x:
                inside = not inside
    return inside


def anchor(box) -> Point:
    """The point of a box tested against zones and masks: its bottom centre."""
    return box.bottom_centre


@dataclass(frozen=True)
class Zone:
    """A named polygon; `labels` limits which labels count in it (empty: all)."""

    name: str
    polygon: Polygon
    labels: Tuple[str, ...] = ()

    def accepts(self, label: str) -> bool:
        """True when objects with this label count in the zone."""
        return not self.labels or label in self.labels

    def contains(self, box, label: str) -> bool:
        """True when an object of `label` with this box stands in the zone."""
        return self.accepts(label) and point_in_polygon(anchor(box), self.polygon)


def zones_of(box, label: str, zones: Iterable[Zone]) -> Tuple[str, ...]:
    """Names of the zones (in config order) the object stands in."""
    return tuple(z.name for z in zones if z.contains(box, label))


def masked(box, masks: Iterable[Polygon]) -> bool:
    """True when the box's bottom-centre lies in any mask: the detection is ignored."""
    p = anchor(box)
    return any(point_in_polygon(p, m) for m in masks)


def apply_masks(detections: Iterable, masks: Sequence[Polygon]) -> tuple:
    """The detections whose bottom-centre is outside every mask."""
    if not masks:
        return tuple(detections)
    return tuple(d for d in detections if not masked(d.bbox, masks))


def zone_counts(objects: Iterable[Tuple[str, Any]], zones: Sequence[Zone]) -> Dict[Tuple[str, str], int]:
    """{(zone, label): count} of (label, box) objects standing in each zone (only non-zero)."""
    counts: Dict[Tuple[str, str], int] = {}
    for label, box in objects:
        for name in zones_of(box, label, zones):
            counts[(name, label)] = counts.get((name, label), 0) + 1
    return counts


# -- config parsing -------------------------------------------------------------------------
def parse_polygon(where: str, value: Any) -> Polygon:
    """A polygon from `[[x, y], ...]` (>= 3 points, each coordinate 0..1); EdgecamError naming `where`."""
    hint = "use a list of at least 3 [x, y] points with 0 <= x, y <= 1"
    if not isinstance(value, (list, tuple)) or len(value) < 3:
        raise EdgecamError(f"config {where}: expected a polygon, got {value!r}: {hint}")
    points = []
    for p in value:
        if (
            not isinstance(p, (list, tuple))
            or len(p) != 2
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
        ):
            raise EdgecamError(f"config {where}: bad point {p!r}: {hint}")
        x, y = float(p[0]), float(p[1])
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise EdgecamError(f"config {where}: point {p!r} is outside the frame: {hint}")
        points.append((x, y))
    return tuple(points)


def parse_masks(where: str, value: Any) -> Tuple[Polygon, ...]:
    """Masks from a list of polygons."""
    if not isinstance(value, (list, tuple)):
        raise EdgecamError(f"config {where}: expected a list of polygons, got {value!r}")
    return tuple(parse_polygon(f"{where}[{i}]", m) for i, m in enumerate(value))


def parse_zones(where: str, value: Any) -> Tuple[Zone, ...]:
    """Zones from a table `name = [[x, y], ...]` or `name = {points = [...], labels = [...]}`."""
    if not isinstance(value, dict):
        raise EdgecamError(f"config {where}: expected a table of name = polygon, got {value!r}")
    zones = []
    for name, spec in value.items():
        at = f"{where}.{name}"
        labels: Tuple[str, ...] = ()
        if isinstance(spec, dict):
            unknown = set(spec) - {"points", "labels"}
            if unknown or "points" not in spec:
                raise EdgecamError(
                    f"config {at}: expected keys points (and optional labels), "
                    f"got {', '.join(sorted(spec)) or 'none'}"
                )
            raw_labels = spec.get("labels", [])
            if not isinstance(raw_labels, (list, tuple)) or not all(isinstance(x, str) for x in raw_labels):
                raise EdgecamError(f"config {at}.labels: expected a list of strings, got {raw_labels!r}")
            labels, spec = tuple(raw_labels), spec["points"]
        zones.append(Zone(str(name), parse_polygon(at, spec), labels))
    return tuple(zones)
