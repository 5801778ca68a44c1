"""Home Assistant's `event` entity of a watched label, against a real broker: a tracked
object's start and end on `<prefix>/<label>/event`, with what an automation needs as plain
attributes (label, zones, `in_<zone>`, score, snapshot, clip), and the discovery that names it."""

from __future__ import annotations

import json

from edgecam import __version__
from edgecam.comms.ha_discovery import device_discovery
from edgecam.comms.topics import Topics
from edgecam.events import EventOptions, EventStage
from edgecam.tracker import Tracker, TrackerOptions
from edgecam.zones import Zone
from mqtt_helpers import TIE, build_mqtt, detect_config, frame_result, mqtt_config

PREFIX = "edgecam/cam1"
DRIVEWAY = Zone("driveway", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))


def test_a_tracked_person_fires_start_and_end_on_the_event_entity(mqtt_broker, tmp_path,
                                                                  subscriber_factory):
    tracker = Tracker(TrackerOptions(min_hits=2, min_age=0.0, max_missed=1, max_lost=0.0))
    stage = EventStage(tracker, EventOptions(labels=("person",), zones=(DRIVEWAY,), snapshots=True))
    # The person is in view for 4 frames, then only the tie: a start, then an end.
    frames = [frame_result(i) for i in range(4)] + [frame_result(i, detections=(TIE,)) for i in range(4, 7)]
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "#")
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(("person",)),
                          tmp_path / "state", "ssd", tracked_events=True)
    try:
        assert sub.wait_topic(f"{PREFIX}/availability") == [b"online"]
        for frame in frames:
            sink.handle(stage(frame))
        fired = [json.loads(p) for p in sub.wait_topic(f"{PREFIX}/person/event", count=2)]
        assert [f["event_type"] for f in fired] == ["start", "end"]
        start, end = fired
        assert start["label"] == "person" and start["zones"] == ["driveway"]
        assert start["in_driveway"] is True  # a state condition, no template
        assert 0 < start["score"] <= 1 and start["id"] == end["id"]
        assert end["reason"] and end["duration_s"] >= 0
        # The best frame went to the image entity's topic before the end fired.
        assert end["image_topic"] == f"{PREFIX}/person/snapshot"
        topics = [m.topic for m in sub.messages]
        assert topics.index(f"{PREFIX}/person/snapshot") < len(topics) - 1 - topics[::-1].index(
            f"{PREFIX}/person/event")
        # Every event_type sent is one the discovery declares.
        cmp = device_discovery("cam1", Topics(PREFIX), ("person",), "ssd", __version__,
                               tracking=True)["cmps"]["person_event"]
        assert cmp["state_topic"] == f"{PREFIX}/person/event"
        assert {f["event_type"] for f in fired} <= set(cmp["event_types"])
        assert not any(m.retain for m in sub.messages if m.topic.endswith("/person/event"))
    finally:
        sink.close()


def test_a_labels_events_fire_it_too_without_the_tracker(mqtt_broker, tmp_path, subscriber_factory):
    from edgecam.datatypes import Event

    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/dog/event")
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(("dog",)), tmp_path / "state",
                          "ssd")
    try:
        start = Event("start", "d1", "dog", 0.7, 0.7, 10.0, 10.5, 0.5)
        result = frame_result(0, detections=())
        result.events = (start,)
        sink.handle(result)
        [fired] = [json.loads(p) for p in sub.wait_topic(f"{PREFIX}/dog/event")]
        assert (fired["event_type"], fired["label"], fired["zones"]) == ("start", "dog", [])
    finally:
        sink.close()


def test_the_end_of_an_object_with_a_clip_names_it():
    from edgecam.comms.ha_discovery import ha_event_payload
    from edgecam.datatypes import Event

    end = Event("end", "abc", "car", 0.8, 0.9, 100.0, 112.5, 12.5, (0.1, 0.1, 0.5, 0.5),
                ("front yard", "drive"), ("drive",), "left", 7, snapshot_path="/var/x.jpg",
                clip="abc.mp4", clip_seconds=16.5, clip_url="http://cam:8080/clips/abc.mp4")
    payload = ha_event_payload(end)
    assert payload["event_type"] == "end" and payload["score"] == 0.9
    assert payload["in_front_yard"] is True and payload["in_drive"] is True
    assert (payload["clip"], payload["clip_seconds"], payload["clip_url"]) == (
        "abc.mp4", 16.5, "http://cam:8080/clips/abc.mp4")
    assert payload["snapshot"] == "/var/x.jpg" and "image_topic" not in payload
    assert (payload["start_ts"], payload["end_ts"], payload["duration_s"]) == (100.0, 112.5, 12.5)
