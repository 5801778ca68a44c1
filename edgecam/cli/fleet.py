"""The fleet view of `edgecam listen --all`: one row per device from what it publishes.

Rows are built from each device's retained `availability` and `stats` and its `events`
(topics under `edgecam/<device>/`), so a view started late still shows every device at once.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Optional

COLUMNS = ("device", "online", "fps", "inference p50", "temp", "spool", "last event")
CLEAR = "\x1b[H\x1b[J"  # cursor home, clear to the end: the table is redrawn in place


@dataclass(frozen=True)
class FleetRow:
    """What is known of one device (None: not heard yet)."""

    device: str
    online: Optional[bool] = None
    fps: Optional[float] = None
    inference_p50_ms: Optional[float] = None
    temp_c: Optional[float] = None
    spool_depth: Optional[int] = None
    last_event: Optional[dict] = None  # {"type", "label", "id", "ts"}
    updated: float = 0.0

    def to_json(self) -> dict:
        """The `--json` line of the row."""
        return {"type": "device", **asdict(self)}

    def cells(self, now: float) -> List[str]:
        """The row as table cells."""
        ev = self.last_event
        event = "-" if ev is None else f"{ev['type']} {ev['label']} {_ago(now - ev['ts'])}"
        return [
            self.device,
            {True: "online", False: "OFFLINE", None: "?"}[self.online],
            _num(self.fps, "{:.1f}"),
            _num(self.inference_p50_ms, "{:.1f} ms"),
            _num(self.temp_c, "{:.0f} C"),
            _num(self.spool_depth, "{}"),
            event,
        ]


def _num(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


class FleetTable:
    """Folds messages into rows; `update` returns the changed row, if any."""

    def __init__(self, root: str = "edgecam"):
        self._root = root.rstrip("/")
        self.rows: Dict[str, FleetRow] = {}

    def update(self, topic: str, payload: bytes, now: Optional[float] = None) -> Optional[FleetRow]:
        """Take one message; the device's new row when it changed something shown."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self._root:
            return None
        device, what = parts[1], parts[2]
        row = self.rows.get(device, FleetRow(device))
        new = _fold(row, what, payload)
        if new is None or new == row:
            return None
        new = replace(new, updated=time.time() if now is None else now)
        self.rows[device] = new
        return new

    def render(self, now: Optional[float] = None) -> str:
        """The table as text, one line per device, sorted by device id."""
        now = time.time() if now is None else now
        lines = [list(COLUMNS)] + [self.rows[d].cells(now) for d in sorted(self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
        text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
        online = sum(1 for r in self.rows.values() if r.online)
        text.append(f"{len(self.rows)} device(s), {online} online")
        return "\n".join(text)


def _fold(row: FleetRow, what: str, payload: bytes) -> Optional[FleetRow]:
    if what == "availability":
        return replace(row, online=payload.strip() == b"online")
    try:
        data = json.loads(payload) if payload else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if what == "stats":
        return replace(
            row,
            fps=data.get("fps"),
            inference_p50_ms=(data.get("inference_ms") or {}).get("p50"),
            temp_c=data.get("cpu_temp_c"),
            spool_depth=data.get("spool_depth"),
        )
    if what == "events" and data.get("type") in ("start", "end"):
        return replace(
            row,
            last_event={
                "type": data["type"],
                "label": data.get("label"),
                "id": data.get("id"),
                "ts": data.get("ts") or time.time(),
            },
        )
    return None
