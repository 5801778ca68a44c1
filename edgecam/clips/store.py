"""The clips folder: clip names, the clips in it, the disk budget, leftovers of a crash.

A clip is `<name>.mp4` with `<name>.json` (the sidecar: its events and per-frame boxes) and
maybe `<name>.jpg` (the event's snapshot). Only a complete clip has its `.mp4` name: it is
written as `<name>.mp4.part` and renamed, so a power cut leaves a `.part` that nothing
serves and the next start deletes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..labels import slug

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".part"
NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9_-]{1,80}$")
SIDE_FILES = (".json", ".jpg")


def clip_name(start: float, label: str, event_id: str) -> str:
    """`20261202T143512Z-person-<id>`: UTC start time first, so names sort by time."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
    return f"{stamp}-{slug(label, '_')[:40]}-{slug(event_id, '_')[:24]}"


def valid_name(name: str) -> bool:
    """True for a name clip_name can make (the preview serves no other file)."""
    return bool(NAME.match(name))


@dataclass(frozen=True)
class ClipInfo:
    """A complete clip in the folder: name, start (unix s), seconds, bytes (video and side
    files), its events' labels, and whether a snapshot thumbnail is beside it."""

    name: str
    start: float
    seconds: float
    size: int
    labels: Tuple[str, ...]
    thumbnail: bool

    def to_json(self) -> dict:
        """The form `edgecam clips list --json` and the preview's /api/clips give."""
        return {
            "name": self.name,
            "clip": f"{self.name}.mp4",
            "start": round(self.start, 3),
            "seconds": round(self.seconds, 2),
            "bytes": self.size,
            "labels": list(self.labels),
            "thumbnail": f"{self.name}.jpg" if self.thumbnail else None,
        }


def read_sidecar(folder: Path, name: str) -> Optional[dict]:
    """The clip's sidecar, or None when it is missing or unreadable."""
    try:
        return json.loads((folder / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _clip_info(video: Path) -> Optional[ClipInfo]:
    side = read_sidecar(video.parent, video.stem) or {}
    size = _size(video) + sum(_size(video.with_suffix(s)) for s in SIDE_FILES)
    labels = tuple(sorted({e.get("label", "") for e in side.get("events", [])} - {""}))
    try:
        start = float(side.get("start", video.stat().st_mtime))
    except (OSError, TypeError, ValueError):
        return None
    return ClipInfo(
        video.stem,
        start,
        float(side.get("seconds", 0.0) or 0.0),
        size,
        labels,
        video.with_suffix(".jpg").exists(),
    )


def _videos(folder: Path) -> List[Path]:
    try:
        return [p for p in folder.iterdir() if p.suffix == ".mp4" and valid_name(p.stem)]
    except OSError:
        return []


def list_clips(folder: Path) -> List[ClipInfo]:
    """The complete clips in `folder`, newest first (an absent folder has none)."""
    found = (_clip_info(v) for v in _videos(folder))
    return sorted((c for c in found if c is not None), key=lambda c: (c.start, c.name), reverse=True)


class ClipIndex:
    """list_clips for a reader that asks often (the preview page polls): a clip's sidecar,
    which holds every frame's boxes, is read once, not at every request."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._known: Dict[str, Tuple[Tuple[int, int], ClipInfo]] = {}

    def clips(self) -> List[ClipInfo]:
        """As list_clips(folder), newest first."""
        known: Dict[str, Tuple[Tuple[int, int], ClipInfo]] = {}
        for video in _videos(self.folder):
            try:
                st = video.stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._known.get(video.stem)
            if cached is not None and cached[0] == stamp:
                known[video.stem] = cached
                continue
            info = _clip_info(video)
            if info is not None:
                known[video.stem] = (stamp, info)
        self._known = known  # deleted clips drop out
        return sorted((i for _, i in known.values()), key=lambda c: (c.start, c.name), reverse=True)


def delete_clip(folder: Path, name: str) -> int:
    """Delete a clip and its side files; returns the bytes freed."""
    freed = 0
    for suffix in (".mp4", *SIDE_FILES):
        path = folder / f"{name}{suffix}"
        size = _size(path)
        try:
            path.unlink()
            freed += size
        except FileNotFoundError:
            pass
    return freed


def prune(
    folder: Path, max_mb: float, max_days: float, now: Optional[float] = None, keep: Sequence[str] = ()
) -> List[str]:
    """Delete clips older than `max_days`, then the oldest until the folder's clips fit in
    `max_mb` (0: no limit of that kind); `keep` names clips never deleted (one being
    written). Returns the names deleted, oldest first."""
    now = time.time() if now is None else now
    clips = sorted(list_clips(folder), key=lambda c: (c.start, c.name))
    total = sum(c.size for c in clips)
    budget = max_mb * 1024 * 1024
    deleted = []
    for clip in clips:
        if clip.name in keep:
            continue
        too_old = max_days > 0 and now - clip.start > max_days * 86400
        too_big = max_mb > 0 and total > budget
        if not (too_old or too_big):
            continue
        total -= clip.size
        delete_clip(folder, clip.name)
        deleted.append(clip.name)
    if deleted:
        log.info("clips: deleted %d old clip(s) to stay within the budget", len(deleted))
    return deleted


def remove_partials(folder: Path, min_age: float = 0.0) -> List[str]:
    """Delete what an interrupted run left (`*.part`): never served, never complete.
    `min_age`: only files unchanged for this many seconds (a running recorder's clip is
    written every few seconds, so `edgecam clips prune` beside the service leaves it)."""
    removed: List[str] = []
    now = time.time()
    try:
        leftovers = [
            p
            for p in folder.iterdir()
            if p.name.endswith(PARTIAL_SUFFIX) and now - p.stat().st_mtime >= min_age
        ]
    except OSError:
        return removed
    for path in leftovers:
        try:
            path.unlink()
            removed.append(path.name)
        except OSError as exc:
            log.warning("clips: cannot delete the partial clip %s: %s", path, exc.strerror)
    if removed:
        log.info("clips: deleted %d partial clip(s) an interrupted run left", len(removed))
    return removed


def partial_path(folder: Path, name: str) -> Path:
    """Where a clip is written until it is complete."""
    return folder / f"{name}.mp4{PARTIAL_SUFFIX}"
