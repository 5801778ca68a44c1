"""Live preview for aiming the camera: an MJPEG page with boxes and stats, `/api/status`,
`/metrics` (Prometheus). Off by default; see README: Live preview.

Only the sink is exported here; `server`, `hub` and `metrics` are its parts.
"""

from __future__ import annotations

from .sink import WebSink, web_sink_from_config

__all__ = ["WebSink", "web_sink_from_config"]
