"""Which detections are kept: one rule for every backend (threshold, classes, area, count)."""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Tuple

from .datatypes import Detection
from .errors import EdgecamError


def allowed_ids(labels: Mapping[int, str], names: Sequence[str]) -> Optional[frozenset]:
    """The class ids of an allow-list of label names; None (all allowed) when it is empty."""
    if not names:
        return None
    by_name = {v: k for k, v in labels.items()}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise EdgecamError(
            f"unknown label(s) in the class allow-list: {', '.join(unknown)} (use names from the label file)"
        )
    return frozenset(by_name[n] for n in names)


def keep(
    candidates: Iterable[Detection], options, allowed: Optional[frozenset], threshold: Optional[float] = None
) -> Tuple[Detection, ...]:
    """Candidates scoring at least the threshold, allowed, valid and large enough; best first,
    at most `options.max_detections`."""
    threshold = options.threshold if threshold is None else threshold
    found = [
        d
        for d in candidates
        if d.score >= threshold
        and (allowed is None or d.class_id in allowed)
        and d.bbox.valid
        and d.bbox.area >= options.min_area
    ]
    found.sort(key=lambda d: -d.score)
    return tuple(found[: options.max_detections])
