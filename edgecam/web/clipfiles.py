"""What the preview serves of the clips folder: the list of clips, and a clip's files by
name (never a path: only names the clip store makes), with byte ranges for <video>."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Tuple

from ..clips.store import ClipIndex, valid_name

TYPES = {".mp4": "video/mp4", ".json": "application/json", ".jpg": "image/jpeg"}
LIST_MAX = 200
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def clips_document(index: ClipIndex) -> dict:
    """`/api/clips`: the newest complete clips first (at most LIST_MAX)."""
    return {"v": 1, "clips": [c.to_json() for c in index.clips()[:LIST_MAX]]}


def clip_file(folder: Path, filename: str) -> Optional[Tuple[Path, str]]:
    """(path, content type) of `<name>.mp4|.json|.jpg` in `folder` when it is a complete
    clip's file, else None (a `.part`, another name, a path)."""
    stem, dot, ext = filename.rpartition(".")
    ctype = TYPES.get(dot + ext)
    if not ctype or not valid_name(stem):
        return None
    path = folder / filename
    if not path.is_file() or not (folder / f"{stem}.mp4").is_file():
        return None
    return path, ctype


def byte_range(header: Optional[str], size: int) -> Optional[Tuple[int, int]]:
    """(first, last) byte of a single `Range: bytes=a-b` header within `size`, or None for
    no header or one that is not understood (the whole file is sent then). A range past the
    end gives (size, size - 1): unsatisfiable (416)."""
    m = _RANGE.match((header or "").strip())
    if not m or not (m.group(1) or m.group(2)):
        return None
    if not m.group(1):  # the last N bytes
        n = int(m.group(2))
        return max(0, size - n), size - 1
    first = int(m.group(1))
    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if first >= size or last < first:
        return size, size - 1
    return first, last
