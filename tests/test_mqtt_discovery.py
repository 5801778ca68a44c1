"""Home Assistant discovery against a real broker: required fields, stale labels cleared."""

from __future__ import annotations

import json
import time
from collections import Counter

from edgecam import __version__
from edgecam.comms import build_mqtt
from edgecam.comms.ha_discovery import discovery_configs
from edgecam.comms.topics import Topics
from mqtt_helpers import detect_config, mqtt_config

PREFIX = "edgecam/cam1"
NODE = "edgecam_cam1"
COMMON = {"name", "unique_id", "availability_topic", "device"}
STATE_KINDS = {"binary_sensor", "sensor", "number", "switch"}
COMMAND_KINDS = {"number", "switch", "button"}


def _configs(sub):
    out = {}
    for m in sub.messages:
        out[m.topic] = json.loads(m.payload) if m.payload else None
    return out


def test_discovery_payloads_have_what_home_assistant_requires(mqtt_broker, tmp_path,
                                                              subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
    watch = ("person", "traffic light")
    wanted = discovery_configs("cam1", Topics(PREFIX), "homeassistant", watch,
                               "ssd_mobilenet_v1", __version__)
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(watch),
                          tmp_path / "state", "ssd_mobilenet_v1")
    try:
        # All of them, however many the sink publishes (a fixed count raced the last ones).
        assert sub.wait_for(lambda s: set(wanted) <= set(_configs(s)), 10)
        configs = _configs(sub)
        by_kind = {}
        for topic, cfg in configs.items():
            kind = topic.split("/")[1]
            assert topic.split("/")[2] == NODE and topic.endswith("/config")
            by_kind.setdefault(kind, []).append(cfg)
            assert COMMON <= set(cfg), topic
            assert cfg["availability_topic"] == f"{PREFIX}/availability"
            assert cfg["unique_id"].startswith(NODE)
            dev = cfg["device"]
            assert dev["identifiers"] == [NODE] and dev["model"] == "ssd_mobilenet_v1"
            assert {"name", "manufacturer", "sw_version"} <= set(dev)
            if kind in STATE_KINDS:
                assert cfg["state_topic"].startswith(PREFIX + "/")
            if kind in COMMAND_KINDS:
                assert cfg["command_topic"].startswith(PREFIX + "/")
        assert len({c["unique_id"] for c in configs.values()}) == len(configs)
        occupancy = [c for c in by_kind["binary_sensor"] if c.get("device_class") == "occupancy"]
        assert sorted(c["state_topic"] for c in occupancy) == [
            f"{PREFIX}/person/occupancy", f"{PREFIX}/traffic_light/occupancy"]
        assert all(c["payload_on"] == "ON" and c["payload_off"] == "OFF" for c in occupancy)
        counts = [c for c in by_kind["sensor"] if c["state_topic"].endswith("/count")]
        assert len(counts) == 2
        assert any(c.get("unit_of_measurement") == "ms" for c in by_kind["sensor"])
        assert by_kind["camera"][0]["topic"] == f"{PREFIX}/snapshot"
        assert by_kind["number"][0]["command_topic"] == f"{PREFIX}/set/threshold"
        assert by_kind["switch"][0]["command_topic"] == f"{PREFIX}/set/enabled"
        assert by_kind["button"][0]["command_topic"] == f"{PREFIX}/cmd/snapshot"
    finally:
        sink.close()


def test_a_removed_label_gets_its_discovery_cleared(mqtt_broker, tmp_path, subscriber_factory):
    first, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(("person", "dog")),
                           tmp_path / "state", "ssd")
    dog = f"homeassistant/binary_sensor/{NODE}/dog_occupancy/config"
    probe = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
    assert probe.wait_topic(dog)
    first.close()

    second, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(("person",)),
                            tmp_path / "state", "ssd")
    try:
        dog_count = f"homeassistant/sensor/{NODE}/dog_count/config"
        assert probe.wait_for(lambda s: s.on(dog)[-1:] == [b""] and s.on(dog_count)[-1:] == [b""], 5)
        late = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
        late.wait_for(lambda s: len(s.messages) >= 8, 5)
        topics = {m.topic for m in late.messages if m.payload}
        assert dog not in topics and dog_count not in topics
        assert f"homeassistant/binary_sensor/{NODE}/person_occupancy/config" in topics
    finally:
        second.close()


def test_each_discovery_config_is_sent_once_at_connect(mqtt_broker, tmp_path, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
    watch = ("person", "dog")
    wanted = discovery_configs("cam1", Topics(PREFIX), "homeassistant", watch, "ssd", __version__)
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(watch),
                          tmp_path / "state", "ssd")
    try:
        assert sub.wait_for(lambda s: set(wanted) <= {m.topic for m in s.messages}, 10)
        # Anything sent a second time arrives right behind the first copy; give it time.
        time.sleep(1.5)
        sent = Counter(m.topic for m in sub.messages)
        assert set(sent) == set(wanted)
        assert {t: n for t, n in sent.items() if n != 1} == {}
    finally:
        sink.close()
