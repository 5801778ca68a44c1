"""Round trip of every topic through the sink against a real mosquitto broker."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import cv2

from edgecam.datatypes import FrameState
from mqtt_helpers import PERSON, TIE, build_mqtt, detect_config, frame_result, mqtt_config, validate

PREFIX = "edgecam/cam1"


def skipped(result):
    """The frame as the pipeline passes it on when detection is paused (not inferred)."""
    return dataclasses.replace(result, detections=(), inference_ms=0.0, annotated=None,
                               state=FrameState.SKIPPED)


def _start(broker, tmp_path, subscriber_factory, watch=("person",), **cfg):
    sub = subscriber_factory(broker.host, broker.port, "#")
    sink, comm, dispatcher, live = build_mqtt(mqtt_config(broker, **cfg), detect_config(watch),
                                              tmp_path / "state", "ssd_mobilenet_v1", lambda: 7)
    assert sub.wait_topic(f"{PREFIX}/availability") == [b"online"]
    return sub, sink, comm, dispatcher, live


def test_every_topic_round_trips_and_validates(mqtt_broker, tmp_path, subscriber_factory):
    sub, sink, comm, _d, _live = _start(mqtt_broker, tmp_path, subscriber_factory)
    try:
        sink.camera_status(True)
        for seq in range(4):  # person in view: starts an event after 2 frames
            sink.handle(frame_result(seq))
        for seq in range(4, 8):  # gone: ends it after 2 frames
            sink.handle(frame_result(seq, detections=(TIE,)))

        dets = [validate("detections", p) for p in sub.wait_topic(f"{PREFIX}/detections", count=8)]
        assert [d["seq"] for d in dets] == list(range(8))
        assert dets[0]["model"] == "ssd_mobilenet_v1"
        assert {d["label"] for d in dets[0]["detections"]} == {"person", "tie"}
        assert dets[0]["detections"][0]["box"] == PERSON.bbox.as_list()

        counts = [validate("count", p) for p in sub.wait_topic(f"{PREFIX}/person/count", count=2)]
        assert [c["count"] for c in counts] == [1, 0]  # published on change only
        assert sub.on(f"{PREFIX}/tie/count") == []  # tie is not watched

        events = [validate("event", p) for p in sub.wait_topic(f"{PREFIX}/events", count=2)]
        assert [e["type"] for e in events] == ["start", "end"]
        assert events[0]["id"] == events[1]["id"] and events[0]["label"] == "person"
        assert events[1]["reason"] == "absent" and events[1]["score"] == PERSON.score
        assert events[1]["end_ts"] >= events[1]["start_ts"]

        assert sub.wait_topic(f"{PREFIX}/person/occupancy", count=2, timeout=5) == [b"ON", b"OFF"]
        assert sub.on(f"{PREFIX}/camera/status") == [b"online"]

        jpeg = sub.wait_topic(f"{PREFIX}/snapshot")[0]
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == frame_result(0).frame.image.shape

        stats = validate("stats", sub.wait_topic(f"{PREFIX}/stats", timeout=5)[0])
        assert stats["frames_dropped"] == 7 and stats["frames"] == 8
        assert stats["inference_ms"]["p50"] is not None and stats["spool_depth"] == 0

        for setting, value in (("threshold", 0.5), ("enabled", True)):
            state = validate("setting_state", sub.wait_topic(f"{PREFIX}/{setting}/state")[0])
            assert state["value"] == value
        late = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "#")
        wanted = {f"{PREFIX}/{t}" for t in ("availability", "person/count", "person/occupancy",
                                             "snapshot", "stats", "camera/status",
                                             "threshold/state", "enabled/state")}
        assert late.wait_for(lambda s: wanted <= {m.topic for m in s.messages if m.retain}, 5)
        assert late.on(f"{PREFIX}/person/occupancy") == [b"OFF"]
    finally:
        sink.close()
    assert sub.wait_for(lambda s: s.on(f"{PREFIX}/availability")[-1:] == [b"offline"], 5)


def test_commands_change_live_settings_and_bad_payloads_answer_on_error(
        mqtt_broker, tmp_path, subscriber_factory):
    sub, sink, comm, dispatcher, live = _start(mqtt_broker, tmp_path, subscriber_factory)
    try:
        sub.client.publish(f"{PREFIX}/set/threshold", "0.65", qos=1)
        sub.wait_for(lambda s: len(s.on(f"{PREFIX}/threshold/state")) >= 2)
        assert live.threshold == 0.65
        assert json.loads(sub.on(f"{PREFIX}/threshold/state")[-1])["value"] == 0.65
        sub.client.publish(f"{PREFIX}/set/enabled", "OFF", qos=1)
        sub.wait_for(lambda s: len(s.on(f"{PREFIX}/enabled/state")) >= 2)
        assert live.enabled is False

        bad = [("set/threshold", b"1.5"), ("set/threshold", b"abc"), ("set/enabled", b"maybe"),
               ("set/unknown", b"1"), ("cmd/nothing", b""), ("set/threshold", b"\xff\xfe")]
        for topic, payload in bad:
            sub.client.publish(f"{PREFIX}/{topic}", payload, qos=1)
        errors = [validate("error", p) for p in sub.wait_topic(f"{PREFIX}/error", count=len(bad))]
        assert [e["topic"] for e in errors] == [f"{PREFIX}/{t}" for t, _ in bad]
        assert "between 0 and 1" in errors[0]["error"]
        assert live.threshold == 0.65 and live.enabled is False  # unchanged by bad input

        calls = []

        def probe(payload):
            if payload != b"go":
                raise ValueError("probe wants 'go'")
            calls.append(payload)
        dispatcher.register_command("probe", probe)
        sub.client.publish(f"{PREFIX}/cmd/probe", "nope", qos=1)
        sub.client.publish(f"{PREFIX}/cmd/probe", "go", qos=1)
        sub.wait_topic(f"{PREFIX}/error", count=len(bad) + 1)
        sub.wait_for(lambda s: calls == [b"go"], 5)
        assert json.loads(sub.on(f"{PREFIX}/error")[-1])["error"] == "probe wants 'go'"

        # cmd/snapshot publishes the latest frame even without a watched label in it
        sink.handle(frame_result(1, detections=(TIE,)))
        sub.client.publish(f"{PREFIX}/cmd/snapshot", "PRESS", qos=1)
        assert sub.wait_topic(f"{PREFIX}/snapshot", timeout=5)
    finally:
        sink.close()


def test_settings_state_is_republished_after_broker_restart(mqtt_broker_restartable, tmp_path,
                                                            subscriber_factory):
    broker = mqtt_broker_restartable
    sub, sink, comm, _d, live = _start(broker, tmp_path, subscriber_factory)
    try:
        sub.client.publish(f"{PREFIX}/set/threshold", "0.3", qos=1)
        sub.wait_for(lambda s: len(s.on(f"{PREFIX}/threshold/state")) >= 2)
        sub.close()
        broker.kill()  # no persistence: the broker forgets every retained message
        broker.start()
        assert subscriber_factory(broker.host, broker.port, "#").wait_for(
            lambda s: s.on(f"{PREFIX}/threshold/state")
            and json.loads(s.on(f"{PREFIX}/threshold/state")[-1])["value"] == 0.3
            and s.on(f"{PREFIX}/availability") == [b"online"], 15)
    finally:
        sink.close()


def test_detections_rate_limit(mqtt_broker, tmp_path, subscriber_factory):
    sub, sink, *_ = _start(mqtt_broker, tmp_path, subscriber_factory, detections_interval=60.0)
    try:
        for seq in range(5):
            sink.handle(frame_result(seq))
        sink.camera_status(False)
        sub.wait_topic(f"{PREFIX}/camera/status", count=2)
        assert [json.loads(p)["seq"] for p in sub.on(f"{PREFIX}/detections")] == [0]
        # the camera going away ends the active event
        events = [json.loads(p) for p in sub.wait_topic(f"{PREFIX}/events", count=2)]
        assert events[-1]["type"] == "end" and events[-1]["reason"] == "camera_offline"
    finally:
        sink.close()


def test_a_clean_stop_leaves_the_camera_status_offline(mqtt_broker, tmp_path, subscriber_factory):
    sub, sink, *_ = _start(mqtt_broker, tmp_path, subscriber_factory)
    try:
        sink.handle(frame_result(0))
        assert sub.wait_topic(f"{PREFIX}/camera/status") == [b"online"]
    finally:
        sink.close()
    assert sub.wait_for(lambda s: s.on(f"{PREFIX}/availability")[-1:] == [b"offline"], 5)
    # Like the availability topic, what a subscriber finds after the stop says offline.
    late = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/+/status")
    assert late.wait_topic(f"{PREFIX}/camera/status", timeout=5) == [b"offline"]
    assert sub.on(f"{PREFIX}/camera/status") == [b"online", b"offline"]


def test_pausing_detection_turns_occupancy_off_and_counts_to_zero(mqtt_broker, tmp_path,
                                                                  subscriber_factory):
    sub, sink, _comm, _d, live = _start(mqtt_broker, tmp_path, subscriber_factory,
                                        occupancy_off_delay=1.0)
    occupancy, count = f"{PREFIX}/person/occupancy", f"{PREFIX}/person/count"
    try:
        for seq in range(3):
            sink.handle(frame_result(seq))
        assert sub.wait_topic(occupancy, count=1, timeout=5) == [b"ON"]
        # Frames the motion gate skips say nothing about the person: occupancy stays on.
        for seq in range(3, 15):
            sink.handle(skipped(frame_result(seq)))
            time.sleep(0.1)
        assert sub.on(occupancy) == [b"ON"]
        # The sink may see the pause before this thread does: time it from the command.
        paused_at = time.monotonic()
        sub.client.publish(f"{PREFIX}/set/enabled", "OFF", qos=1)
        assert sub.wait_for(lambda s: live.enabled is False, 5)
        # What the pipeline hands the sinks while detection is off: skipped frames.
        for seq in range(15, 42):
            sink.handle(skipped(frame_result(seq)))
            time.sleep(0.02)
        assert sub.wait_for(lambda s: s.on(occupancy)[-1:] == [b"OFF"], 5), sub.on(occupancy)
        assert time.monotonic() - paused_at >= 1.0, "not before the off delay"
        assert [json.loads(p)["count"] for p in sub.on(count)] == [1, 0]
        events = [validate("event", p) for p in sub.wait_topic(f"{PREFIX}/events", count=2)]
        assert [e["type"] for e in events] == ["start", "end"] and events[1]["reason"] == "paused"

        sub.client.publish(f"{PREFIX}/set/enabled", "ON", qos=1)
        assert sub.wait_for(lambda s: live.enabled is True, 5)
        for seq in range(42, 45):
            sink.handle(frame_result(seq))
        assert sub.wait_for(lambda s: s.on(occupancy)[-1:] == [b"ON"], 5)
        assert json.loads(sub.on(count)[-1])["count"] == 1
    finally:
        sink.close()


def test_a_short_pause_changes_nothing(mqtt_broker, tmp_path, subscriber_factory):
    sub, sink, _comm, _d, live = _start(mqtt_broker, tmp_path, subscriber_factory,
                                        occupancy_off_delay=3.0)
    occupancy = f"{PREFIX}/person/occupancy"
    try:
        for seq in range(3):
            sink.handle(frame_result(seq))
        assert sub.wait_topic(occupancy, count=1, timeout=5) == [b"ON"]
        live.update(enabled=False)
        time.sleep(0.8)
        live.update(enabled=True)
        for seq in range(3, 6):
            sink.handle(frame_result(seq))
        time.sleep(0.5)
        assert sub.on(occupancy) == [b"ON"]
        assert [json.loads(p)["type"] for p in sub.on(f"{PREFIX}/events")] == ["start"]
    finally:
        sink.close()
