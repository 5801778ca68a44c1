"""The MQTT sink: formats and delivers what each FrameResult carries on the device's topics.

See docs/mqtt.md: a result's detections and a snapshot, the events the pipeline's processors
made (`result.events`: events, zone counts, per-label counts and occupancy), and stats.

It holds no domain state: events, counts and occupancy are made in the pipeline
(edgecam.events, edgecam.label_events), so `--json` reports the same. `handle()` runs on the
pipeline's sink thread and never touches the network directly: QoS 0 and retained messages
are queued by the transport, events go through the on-disk spool. A housekeeping thread
publishes stats and requested snapshots.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Callable, Iterable, Optional

from ..datatypes import CountChange, EndReason, Event, FrameResult, OccupancyChange, StageEvent, ZoneChange
from ..stages import Sink
from .base import Communicator
from .ha_discovery import ha_event_payload
from .packets import fit_jpeg
from .reliable import ReliablePublisher
from .stats_message import StatsCollector
from .topics import Topics

log = logging.getLogger("edgecam.mqtt")

JPEG_QUALITY = 80


def event_payload(ev: Event, device_id: str) -> dict:
    """JSON for `<prefix>/events` (schema: event.json): a tracked object's event has its box
    and zones and, at the end, the best crop; a label's has neither."""
    end = ev.kind == "end"
    payload = {
        "v": 1,
        "type": ev.kind,
        "id": ev.id,
        "device": device_id,
        "label": ev.label,
        "score": ev.top_score,
        "start_ts": ev.first_seen,
        "end_ts": ev.last_seen if end else None,
        "duration_s": ev.duration if end else None,
        "reason": ev.reason,
        "seq": ev.seq,
        "ts": round(time.time(), 3),
    }
    if ev.box is not None:
        payload.update(box=list(ev.box), zones=list(ev.zones), entered_zones=list(ev.entered_zones))
    if ev.snapshot is not None:
        payload["snapshot"] = base64.b64encode(ev.snapshot.crop).decode("ascii")
    if ev.clip is not None:  # [clips] on: the end names its clip
        payload.update(clip=ev.clip, clip_seconds=ev.clip_seconds)
        if ev.clip_url is not None:
            payload["clip_url"] = ev.clip_url
    return payload


def clip_latest_payload(ev: Event) -> dict:
    """JSON for the retained `<prefix>/clips/latest` (schema clip_latest.json): the newest
    clip, named by the end event of the object it shows."""
    payload = {
        "v": 1,
        "clip": ev.clip,
        "clip_seconds": ev.clip_seconds,
        "id": ev.id,
        "label": ev.label,
        "start_ts": ev.first_seen,
        "end_ts": ev.last_seen,
        "ts": round(time.time(), 3),
    }
    if ev.clip_url is not None:
        payload["clip_url"] = ev.clip_url
    return payload


def restart_end_payload(last: bytes, last_known: float) -> dict:
    """The `end` (reason `restart`) of an event whose last published message `last` (its start
    or latest update) was left without an end by a process that did not stop cleanly;
    `last_known`: the last unix time it was known to be open."""
    ev = json.loads(last)
    ev.pop("snapshot", None)
    end_ts = round(max(float(last_known), ev["start_ts"]), 3)
    ev.update(
        type="end",
        end_ts=end_ts,
        duration_s=round(end_ts - ev["start_ts"], 3),
        reason=EndReason.RESTART.value,
        seq=None,
        ts=round(time.time(), 3),
    )
    return ev


def detections_payload(result: FrameResult, model_name: str) -> dict:
    """JSON for `<prefix>/detections` (schema: detections.json)."""
    f = result.frame
    return {
        "v": 1,
        "ts": round(f.ts, 3),
        "seq": f.seq,
        "source": f.source,
        "model": model_name,
        "width": f.width,
        "height": f.height,
        "inference_ms": round(float(result.inference_ms), 2),
        "detections": [d.to_dict() for d in result.detections],
    }


def snapshot_jpeg(image) -> Optional[bytes]:
    """JPEG bytes of a snapshot, None when it cannot be encoded (nothing is published then)."""
    from ..annotate import encode_jpeg  # OpenCV: only when a snapshot is actually due

    try:
        return encode_jpeg(image, JPEG_QUALITY)
    except ValueError:
        return None


def _lifecycle(kind: str, event_id: str) -> dict:
    """What an event message does to the spool's open events (Spool.append)."""
    return {"closes": event_id} if kind == "end" else {"opens": event_id}


def publish_jpeg(comm: Communicator, topic: str, jpeg: bytes) -> None:
    """Publish a retained JPEG, re-encoded smaller when it would not fit in the transport's
    packet limit (the transport drops, with a warning, one that still does not)."""
    data = fit_jpeg(jpeg, comm.payload_budget(topic))
    comm.publish(topic, data if data is not None else jpeg, retain=True)


class MqttSink(Sink):
    """Pipeline sink publishing one device's topics. `close()` shuts the MQTT side down."""

    name = "mqtt"
    takes_flush = True

    def __init__(
        self,
        comm: Communicator,
        reliable: ReliablePublisher,
        topics: Topics,
        device_id: str,
        model_name: str,
        watch: Iterable[str],
        cfg,
        dropped: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
        annotate: Optional[Callable[[FrameResult], object]] = None,
        housekeeping_interval: float = 0.25,
        backend: str = "cpu",
    ):
        self._comm = comm
        self._reliable = reliable
        self.topics = topics
        self._device = device_id
        self._model = model_name
        self._watch = frozenset(watch)
        self._cfg = cfg
        self._dropped = dropped
        self._clock = clock
        self._lock = threading.RLock()
        now = clock()
        self._stats = StatsCollector(now, backend=backend)
        self._last_detections = -1e18
        self._last_snapshot = -1e18
        self._last_stats = now
        self._latest: Optional[FrameResult] = None
        # Draws boxes on demand (shared with other sinks, so a frame is drawn at most once).
        self._annotate = annotate or (lambda r: r.annotated if r.annotated is not None else r.frame.image)
        self._snapshot_requested = False
        self._camera: Optional[bool] = None
        self._closed = False
        self._warned_crop = False
        self._stop = threading.Event()
        self._open_touched = 0.0
        self._end_left_open()
        self._thread = threading.Thread(
            target=self._housekeeping, args=(housekeeping_interval,), name="edgecam-mqtt-sink", daemon=True
        )
        self._thread.start()

    # -- called by the pipeline -----------------------------------------------------------
    def handle(self, result: FrameResult) -> None:
        """Publish what one processed frame carries. Never blocks on the network."""
        if self._closed:
            return
        with self._lock:
            if not result.skipped:
                self._frame(result)
            for ev in result.events:
                self._publish_event(ev)

    def camera_status(self, online: bool) -> None:
        """Report whether frames arrive (retained, published on change). What was in view
        is ended by the pipeline (app.camera_status), like every event."""
        with self._lock:
            if online == self._camera:
                return
            self._camera = online
            self._comm.publish(
                self.topics.camera_status, "online" if online else "offline", retain=True, qos=1
            )

    def spool_depth(self) -> int:
        """Events waiting on disk for the broker's acknowledgement."""
        return self._reliable.depth()

    def request_snapshot(self, _payload: bytes = b"") -> None:
        """Publish a snapshot of the latest frame soon, whatever is in it (cmd/snapshot)."""
        self._snapshot_requested = True

    def tick(self) -> None:
        """Publish what is due without a frame: stats, a requested snapshot."""
        with self._lock:
            if not self._closed:
                self._tick(self._clock())

    def close(self, timeout: float = 2.0) -> None:
        """Report the camera `offline`, wait (up to `timeout` s) for the spool to be
        acknowledged, publish `offline` and disconnect. Unacknowledged events stay spooled
        for the next run. The events that the stop ends came before, from the pipeline."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # No frames come from a stopped process: the retained status must not say online.
            self.camera_status(False)
        self._stop.set()
        self._thread.join(1.0)
        if not self._reliable.flush(timeout) and self._reliable.depth():
            log.warning(
                "mqtt: %d event(s) not yet acknowledged; kept in the spool for the next run",
                self._reliable.depth(),
            )
        self._comm.stop()
        self._reliable.stop()
        self._reliable.spool.close()

    # -- internals (lock held) -----------------------------------------------------------
    def _frame(self, result: FrameResult) -> None:
        now = self._clock()
        if self._camera is None:
            self.camera_status(True)
        self._stats.record(result.inference_ms, result.timings.get("sensor_dnn"))
        if now - self._last_detections >= self._cfg.detections_interval:
            self._last_detections = now
            self._comm.publish(self.topics.detections, json.dumps(detections_payload(result, self._model)))
        # A reference only: encoding happens when a snapshot is due.
        self._latest = result
        watched = any(d.label in self._watch for d in result.detections)
        if watched and now - self._last_snapshot >= self._cfg.snapshot_interval:
            self._publish_snapshot(result, now)
        # Timed work (stats, requested snapshots) is left to the housekeeping thread, not
        # repeated for every frame.

    def _publish_event(self, ev: StageEvent) -> None:
        if isinstance(ev, Event):
            log.info("mqtt: event %s %s (%s)", ev.kind, ev.label, ev.id)
            payload = self._fit_crop(event_payload(ev, self._device))
            self._reliable.publish(
                self.topics.events, json.dumps(payload).encode(), **_lifecycle(ev.kind, ev.id)
            )
            image = None
            if ev.snapshot is not None:
                image = self.topics.label_snapshot(ev.label)
                publish_jpeg(self._comm, image, ev.snapshot.full)
            if ev.kind in ("start", "end"):  # Home Assistant's event entity of the label
                self._comm.publish(
                    self.topics.label_event(ev.label), json.dumps(ha_event_payload(ev, image)), qos=1
                )
            if ev.clip is not None:
                self._comm.publish(
                    self.topics.clips_latest, json.dumps(clip_latest_payload(ev)), retain=True, qos=1
                )
        elif isinstance(ev, ZoneChange):
            payload = {"v": 1, "ts": ev.ts, "zone": ev.zone, "label": ev.label, "count": ev.count}
            self._comm.publish(self.topics.zone_count(ev.zone, ev.label), json.dumps(payload), retain=True)
        elif isinstance(ev, CountChange):
            payload = {"v": 1, "ts": ev.ts, "label": ev.label, "count": ev.count}
            self._comm.publish(self.topics.count(ev.label), json.dumps(payload), retain=True)
        elif isinstance(ev, OccupancyChange):
            self._comm.publish(
                self.topics.occupancy(ev.label), "ON" if ev.occupied else "OFF", retain=True, qos=1
            )

    def _fit_crop(self, payload: dict) -> dict:
        # The crop rides base64 inside the JSON: re-encode it to what the packet leaves, or
        # send the event without it (an event is never held back by its picture).
        if "snapshot" not in payload:
            return payload
        budget = self._comm.payload_budget(self.topics.events, qos=1)
        if budget is None:
            return payload
        rest = len(json.dumps({**payload, "snapshot": ""}).encode())
        if rest + len(payload["snapshot"]) <= budget:
            return payload
        crop = fit_jpeg(base64.b64decode(payload["snapshot"]), max(0, (budget - rest) * 3 // 4))
        if crop is None:
            if not self._warned_crop:
                self._warned_crop = True
                log.warning(
                    "mqtt: an event's snapshot crop does not fit in [mqtt] max_packet "
                    "even re-encoded; events go out without it"
                )
            return {k: v for k, v in payload.items() if k != "snapshot"}
        return {**payload, "snapshot": base64.b64encode(crop).decode("ascii")}

    def _tick(self, now: float) -> None:
        if self._snapshot_requested and self._latest is not None:
            self._publish_snapshot(self._latest, now)
        if now - self._last_stats >= self._cfg.stats_interval:
            self._last_stats = now
            try:
                dropped = int(self._dropped())
            except Exception:  # the pipeline's counter must not break publishing
                dropped = 0
            payload = self._stats.report(now, dropped, self._reliable.depth(), self._reliable.dropped)
            self._comm.publish(self.topics.stats, json.dumps(payload), retain=True)
            self._touch_open_events()

    def _end_left_open(self) -> None:
        # The spool's open events outlived the process that started them (SIGKILL, power
        # loss, a watchdog abort): whoever waits for their `end` would wait forever.
        left = self._reliable.spool.open_events()
        if left:
            log.warning(
                "mqtt: the last run did not stop cleanly; ending the %d event(s) it left "
                "open (reason restart)",
                len(left),
            )
        for ev in left:
            payload = restart_end_payload(ev.payload, ev.seen)
            self._reliable.publish(ev.topic, json.dumps(payload).encode(), closes=ev.id)

    def _touch_open_events(self) -> None:
        # The time of the last frame seen while events were open: the end_ts they get if this
        # process dies without ending them. Written at the stats interval, not per frame
        # (an SD card).
        seen = self._latest.frame.ts if self._latest is not None else 0.0
        if seen > self._open_touched:
            self._open_touched = seen
            self._reliable.spool.touch_open(seen)

    def _publish_snapshot(self, result: FrameResult, now: float) -> None:
        self._snapshot_requested = False
        self._last_snapshot = now
        data = snapshot_jpeg(self._annotate(result))
        if data:
            publish_jpeg(self._comm, self.topics.snapshot, data)

    def _housekeeping(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.tick()
            except Exception:
                log.exception("mqtt: housekeeping failed")
