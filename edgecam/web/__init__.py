"""Live preview for aiming the camera: an MJPEG page with boxes and stats, `/api/status`,
`/metrics` (Prometheus), and with [clips] on the events list and clip player (`/api/clips`,
`/clips/<name>.mp4|.json|.jpg`). Off by default; see docs/preview.md.

Only the sink is exported here; `server`, `hub` and `metrics` are its parts.
"""

from __future__ import annotations

from .sink import WebSink, web_sink_from_config

__all__ = ["WebSink", "web_sink_from_config"]
