"""Tracker events on MQTT: the sink publishes result.events (QoS 1 through the spool) instead of
its per-label debounce, with zone counts and the best snapshot, against a real mosquitto."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from edgecam.comms import build_mqtt
from edgecam.events import EventOptions, EventStage
from edgecam.tracker import Tracker, TrackerOptions
from edgecam.zones import Zone
from mqtt_helpers import PERSON, TIE, detect_config, frame_result, mqtt_config, validate

PREFIX = "edgecam/cam1"
WHOLE = Zone("room", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))


def test_tracker_events_zone_counts_and_snapshot_on_mqtt(mqtt_broker, tmp_path, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "#")
    sink, _comm, _d, _live = build_mqtt(mqtt_config(mqtt_broker), detect_config(("person",)),
                                        tmp_path / "state", "ssd", lambda: 0, tracked_events=True)
    stage = EventStage(Tracker(TrackerOptions(min_hits=2, max_missed=1)),
                       EventOptions(labels=("person",), zones=(WHOLE,), snapshots=True))
    try:
        assert sub.wait_topic(f"{PREFIX}/availability") == [b"online"]
        for seq in range(4):
            sink.handle(stage(frame_result(seq)))
        for seq in range(4, 7):
            sink.handle(stage(frame_result(seq, detections=(TIE,))))
        events = [validate("event", p) for p in sub.wait_topic(f"{PREFIX}/events", count=2)]
        assert [e["type"] for e in events] == ["start", "end"]  # no debounced duplicates
        assert events[0]["id"] == events[1]["id"] and events[1]["reason"] == "absent"
        assert events[0]["zones"] == ["room"] and events[1]["box"] == PERSON.bbox.as_list()
        crop = cv2.imdecode(np.frombuffer(base64.b64decode(events[1]["snapshot"]), np.uint8), cv2.IMREAD_COLOR)
        full = cv2.imdecode(np.frombuffer(sub.wait_topic(f"{PREFIX}/person/snapshot")[0], np.uint8),
                            cv2.IMREAD_COLOR)
        assert full.shape == frame_result(0).frame.image.shape and crop.shape[0] <= full.shape[0]
        counts = [validate("zone_count", p) for p in sub.wait_topic(f"{PREFIX}/zones/room/person/count", count=2)]
        assert [c["count"] for c in counts] == [1, 0]
    finally:
        sink.close()
