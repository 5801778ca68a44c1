"""Read label files: plain lines, plain lines after a `???`/`background` first line, or `ID label` pairs.

`slug` makes a label safe for a topic level or a file name (the MQTT topics, event snapshots).
"""

from __future__ import annotations

import re
from typing import Dict, Mapping

from .errors import EdgecamError

_PAIR = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.+?)\s*$")
_PLACEHOLDERS = {"???", "background", "__background__"}
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def slug(text: str, sep: str = "_", empty: str = "_") -> str:
    """A label or id made safe for one topic level, HA object ids and file names: each run of
    characters other than letters, digits, '-' and '_' becomes `sep`, none at either end
    ('traffic light' -> 'traffic_light'); `empty` when nothing is left."""
    return _SLUG.sub(sep, text.strip()).strip(sep) or empty


def parse_labels(text: str) -> Dict[int, str]:
    """Map class id -> name from a label file's text.

    Plain files are 0-indexed, except that a first line of `???` or `background` is the
    model's background class and shifts ids by one (class id c -> line c+1), as in the TFLite
    examples' COCO map. Placeholder entries (`???`, `n/a`) are kept out of the map.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        return {}
    candidates = [ln for ln in lines if ln]
    pairs = [m for m in map(_PAIR.match, candidates) if m is not None]
    if len(pairs) == len(candidates):
        return {int(m.group(1)): m.group(2) for m in pairs if not _placeholder(m.group(2))}
    offset = 1 if lines[0].lower() in _PLACEHOLDERS else 0
    return {
        i - offset: name for i, name in enumerate(lines) if i >= offset and name and not _placeholder(name)
    }


def _placeholder(name: str) -> bool:
    return name.lower() in _PLACEHOLDERS or name.lower() == "n/a"


def load_labels(path: str) -> Dict[int, str]:
    """Labels from a file, or an EdgecamError naming the file and the fix."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise EdgecamError(f"label file not found: {path} (give --labels FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgecamError(f"cannot read label file {path}: {exc}") from None
    labels = parse_labels(text)
    if not labels:
        raise EdgecamError(f"label file {path} has no labels: give the model's label map")
    return labels


def check_labels_fit(labels: Mapping[int, str], num_classes: int, path: str) -> None:
    """Raise an EdgecamError when a label map cannot belong to a model with `num_classes` classes:
    it names more classes than the model has (ImageNet's 1001 for COCO's 90), or it stops short
    of the model's last classes (3 lines for 90 classes: every class past them would show as
    `class_<id>`). One class of slack either way: some models count the background class."""
    top = max(labels)
    if top >= num_classes + 1 or len(labels) > num_classes + 1:
        raise EdgecamError(
            f"label file {path} has {len(labels)} labels (ids up to {top}) but the model has "
            f"{num_classes} classes: give the label map that came with the model"
        )
    if top < num_classes - 2:
        raise EdgecamError(
            f"label file {path} has {len(labels)} labels (ids up to {top}) but the model has "
            f"{num_classes} classes, so classes past id {top} would have no name: give the "
            f"label map that came with the model (one line per class, or `ID label` pairs)"
        )


def label_for(labels: Mapping[int, str], class_id: int) -> str:
    """The name of a class, or `class_<id>` when the map has none."""
    return labels.get(class_id, f"class_{class_id}")
