"""The web sink: feeds the preview server from the pipeline (one sink thread, never inference).

Per result it updates the metrics (cheap) and offers the frame to the JPEG hub, which only
draws and encodes it when someone watches, at most `max_fps` times a second.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

from ..annotate import Annotate
from ..datatypes import FrameResult
from ..stats import PipelineStats
from ..stages import Sink
from .hub import JpegHub
from .metrics import Metrics
from .server import PreviewServer, parse_listen

log = logging.getLogger("edgecam.web")

TOKEN_ENV = "EDGECAM_WEB_TOKEN"


class WebSink(Sink):
    """Pipeline sink serving the live preview, `/api/status` and `/metrics` on `listen`.

    `stats()` returns the pipeline's PipelineStats (or None before it exists).
    `mqtt_connected()` and `spool_depth()` are given only when MQTT is configured.
    `server_options` go to PreviewServer (max_idle, idle_timeout, request_timeout, send_timeout,
    clips: the clips folder it lists and serves).
    The server starts here and stops on `close()`.
    """

    name = "web"

    def __init__(
        self,
        listen: str,
        annotate: Annotate,
        *,
        token: Optional[str] = None,
        max_fps: float = 10.0,
        max_streams: int = 4,
        quality: int = 80,
        stats: Callable[[], Optional[PipelineStats]] = lambda: None,
        mqtt_connected: Optional[Callable[[], bool]] = None,
        spool_depth: Optional[Callable[[], int]] = None,
        **server_options,
    ):
        host, port = parse_listen(listen)
        self._stats, self._max_fps = stats, max_fps
        self._mqtt_connected, self._spool_depth = mqtt_connected, spool_depth
        self._inferred: Optional[FrameResult] = None
        self.hub = JpegHub(annotate, max_fps, max_streams, quality)
        self.metrics = Metrics(
            stats, lambda: self.hub.viewers, lambda: self.hub.encoded, mqtt_connected, spool_depth
        )
        self.server = PreviewServer(
            (host, port), self.hub, self.metrics, self.status, token, **server_options
        ).start()

    @property
    def url(self) -> str:
        """The server's base URL (with the real port when port 0 was asked)."""
        return self.server.url

    def handle(self, result: FrameResult) -> None:
        self.metrics.observe(result)
        if not result.skipped:
            self._inferred = result
        self.hub.offer(result)

    def close(self) -> None:
        self.server.stop()

    def status(self) -> dict:
        """The `/api/status` document (docs/preview.md)."""
        stats = self._stats()
        summary = stats.summary() if stats is not None else None
        latest, inferred = self.hub.latest(), self._inferred
        out: Dict[str, Any] = {
            "v": 1,
            "ts": round(time.time(), 3),
            "fps": summary.fps if summary else 0.0,
            "inference_ms": round(inferred.inference_ms, 2) if inferred else None,
            "inference_p50_ms": summary.inference_p50_ms if summary else None,
            "inference_p95_ms": summary.inference_p95_ms if summary else None,
            "captured": summary.captured if summary else 0,
            "processed": summary.processed if summary else 0,
            "dropped": summary.dropped if summary else 0,
            "skipped": summary.skipped if summary else 0,
            "uptime_s": summary.uptime_s if summary else None,
            "frame": None,
            "detections": [],
            "detections_seq": None,
            "viewers": self.hub.viewers,
            "max_streams": self.hub.max_viewers,
            "stream_fps": self._max_fps,
            "jpeg_encoded": self.hub.encoded,
            "mqtt": None,
        }
        if latest is not None:
            f = latest.frame
            out["frame"] = {
                "seq": f.seq,
                "ts": round(f.ts, 3),
                "source": f.source,
                "width": f.width,
                "height": f.height,
            }
        if inferred is not None:
            out["detections"] = [d.to_dict() for d in inferred.detections]
            out["detections_seq"] = inferred.frame.seq
        if self._mqtt_connected is not None or self._spool_depth is not None:
            out["mqtt"] = {"connected": _safe(self._mqtt_connected), "spool_depth": _safe(self._spool_depth)}
        return out


def _safe(read: Optional[Callable]):
    # A gauge read while MQTT shuts down must not break the status page.
    if read is None:
        return None
    try:
        return read()
    except Exception as exc:
        log.debug("preview: status read failed: %s", exc)
        return None


def web_sink_from_config(
    service,
    annotate: Annotate,
    stats: Optional[PipelineStats] = None,
    mqtt_connected: Optional[Callable[[], bool]] = None,
    spool_depth: Optional[Callable[[], int]] = None,
    env: Optional[Mapping[str, str]] = None,
    clips: Optional[Path] = None,
) -> WebSink:
    """The WebSink for `[service] web` (which must be set); token from config, else $EDGECAM_WEB_TOKEN."""
    env = os.environ if env is None else env
    token = service.web_token or env.get(TOKEN_ENV) or None
    return WebSink(
        service.web,
        annotate,
        token=token,
        max_fps=service.web_fps,
        max_streams=service.web_max_streams,
        stats=lambda: stats,
        mqtt_connected=mqtt_connected,
        spool_depth=spool_depth,
        clips=clips,
    )
