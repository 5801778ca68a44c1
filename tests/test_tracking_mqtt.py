"""Tracker events on MQTT: the sink publishes result.events (QoS 1 through the spool) instead of
its per-label debounce, with zone counts and the best snapshot, against a real mosquitto; a long
pause ends the tracked objects."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time

import cv2
import numpy as np

from edgecam.events import EventOptions, EventStage
from edgecam.tracker import Tracker, TrackerOptions
from edgecam.zones import Zone
from conftest import COCO_LABELS, IMAGES, SSD_MODEL
from mqtt_helpers import PERSON, TIE, build_mqtt, detect_config, frame_result, mqtt_config, validate

PREFIX = "edgecam/cam1"
WHOLE = Zone("room", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))


def test_tracker_events_zone_counts_and_snapshot_on_mqtt(mqtt_broker, tmp_path, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "#")
    sink, _comm, _d, _live = build_mqtt(mqtt_config(mqtt_broker), detect_config(("person",)),
                                        tmp_path / "state", "ssd", lambda: 0, tracked_events=True)
    stage = EventStage(Tracker(TrackerOptions(min_hits=2, min_age=0.0, max_missed=1, max_lost=0.0)),
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


def test_a_long_pause_ends_tracked_objects_and_empties_the_zones(
        edgecam_cmd, cli_env, mqtt_broker, subscriber_factory, tmp_path):
    # The real `edgecam run --track` process: a person in view on a looping photo, then
    # detection switched off over MQTT for longer than occupancy_off_delay.
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\noccupancy_off_delay = 1.0\n\n[track]\nmin_hits = 2\nrequire_motion = false\n\n"
                      "[track.zones]\nroom = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\n")
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/#")
    proc = subprocess.Popen(
        [*edgecam_cmd, "run", "--config", str(config), "--model", str(SSD_MODEL),
         "--labels", str(COCO_LABELS), "--source", str(IMAGES / "grace_hopper.bmp"), "--loop",
         "--track", "--watch", "person", "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
         "--device-id", "cam1"],
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    events_topic, zone = f"{PREFIX}/events", f"{PREFIX}/zones/room/person/count"
    occupancy, count = f"{PREFIX}/person/occupancy", f"{PREFIX}/person/count"

    def events(s):
        return [validate("event", p) for p in s.on(events_topic)]

    try:
        assert sub.wait_for(lambda s: any(e["type"] == "start" for e in events(s)), 30), \
            proc.stderr.read() if proc.poll() is not None else "no start"
        assert sub.wait_for(lambda s: s.on(occupancy)[-1:] == [b"ON"], 10)
        assert sub.wait_for(lambda s: [json.loads(p)["count"] > 0 for p in s.on(zone)][-1:] == [True], 10)

        paused_at = time.monotonic()
        sub.client.publish(f"{PREFIX}/set/enabled", "OFF", qos=1)
        assert sub.wait_for(lambda s: s.on(f"{PREFIX}/enabled/state")
                            and json.loads(s.on(f"{PREFIX}/enabled/state")[-1])["value"] is False, 10)
        before = {e["id"] for e in events(sub) if e["type"] == "start"}

        def ends(s):
            return {e["id"]: e for e in events(s) if e["type"] == "end"}
        assert sub.wait_for(lambda s: set(ends(s)) >= before, 10), events(sub)
        assert time.monotonic() - paused_at >= 1.0, "not before the off delay"
        assert {ends(sub)[i]["reason"] for i in before} == {"paused"}
        assert sub.wait_for(lambda s: [json.loads(p)["count"] for p in s.on(zone)][-1:] == [0], 5), \
            [json.loads(p) for p in sub.on(zone)]
        assert sub.wait_for(lambda s: s.on(occupancy)[-1:] == [b"OFF"], 5), sub.on(occupancy)
        assert sub.wait_for(lambda s: json.loads(s.on(count)[-1])["count"] == 0, 5)

        # Back on: what is in view is new objects; the old ones are not ended a second time.
        sub.client.publish(f"{PREFIX}/set/enabled", "ON", qos=1)
        assert sub.wait_for(lambda s: any(e["type"] == "start" and e["id"] not in before
                                          for e in events(s)), 20), events(sub)
        assert sub.wait_for(lambda s: [json.loads(p)["count"] > 0 for p in s.on(zone)][-1:] == [True], 10)
        assert sub.wait_for(lambda s: s.on(occupancy)[-1:] == [b"ON"], 10)
        assert sorted(e["reason"] for e in events(sub) if e["type"] == "end" and e["id"] in before) \
            == ["paused"] * len(before)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
