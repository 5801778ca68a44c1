"""Home Assistant device-based discovery against a real broker: the payload checked against a
JSON schema written from HA's docs, the migration of older per-entity configs with HA's
migrate_discovery procedure, stale entities cleared, and the answer to HA's birth message.
(scripts/check_ha_migration.py checks the migration against a real Home Assistant.)"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from edgecam import __version__
from edgecam.comms.ha_discovery import (BIRTH_DELAY_MAX, MIGRATE, device_discovery,
                                        random_birth_delay)
from edgecam.comms.topics import Topics
from mqtt_helpers import build_mqtt, detect_config, mqtt_config

PREFIX = "edgecam/cam1"
NODE = "edgecam_cam1"
DEVICE_TOPIC = f"homeassistant/device/{NODE}/config"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "ha_device_discovery.json").read_text())


def _device_configs(sub):
    return [json.loads(p) for p in sub.on(DEVICE_TOPIC) if p]


def _legacy(payload: dict) -> dict:
    """{topic: payload} as an edgecam of before device-based discovery left them retained:
    one config per entity, each with the device and the availability."""
    shared = {k: v for k, v in payload.items() if k not in ("dev", "o", "cmps", "qos")}
    device = payload["dev"]
    return {f"homeassistant/{c['p']}/{NODE}/{oid}/config":
            {**{k: v for k, v in c.items() if k != "p"}, **shared, "device": device}
            for oid, c in payload["cmps"].items()}


def test_schema_refuses_what_home_assistant_refuses():
    good = device_discovery("cam1", Topics(PREFIX), ("person",), "ssd", __version__)
    jsonschema.validate(good, SCHEMA)
    for broken in ({k: v for k, v in good.items() if k != "o"},
                   {**good, "o": {"sw_version": "1"}},
                   {**good, "cmps": {"x": {"p": "sensor", "unique_id": "u"}}},  # no state_topic
                   {**good, "cmps": {"x": {"p": "sensor", "state_topic": "a/b"}}},  # no unique_id
                   {**good, "cmps": {"x": {**good["cmps"]["person_count"], "object_id": "x"}}},
                   {**good, "cmps": {"x": {"p": "event", "unique_id": "u", "state_topic": "a"}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA)


def test_one_device_config_with_every_entity(mqtt_broker, tmp_path, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
    watch = ("person", "traffic light")
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(watch),
                          tmp_path / "state", "ssd_mobilenet_v1", tracked_events=True)
    try:
        assert sub.wait_for(lambda s: _device_configs(s), 10)
        # Nothing but the one device config (and our own sync message) under the prefix.
        assert {m.topic for m in sub.messages} <= {DEVICE_TOPIC, f"homeassistant/device/{NODE}/sync"}
        [retained] = [m for m in sub.messages if m.topic == DEVICE_TOPIC]
        cfg = json.loads(retained.payload)
        jsonschema.validate(cfg, SCHEMA)
        assert cfg["dev"]["identifiers"] == [NODE] and cfg["dev"]["model"] == "ssd_mobilenet_v1"
        assert cfg["o"] == {"name": "edgecam", "sw_version": __version__,
                            "support_url": cfg["o"]["support_url"]}
        assert cfg["availability_topic"] == f"{PREFIX}/availability"
        cmps = cfg["cmps"]
        assert len({c["unique_id"] for c in cmps.values()}) == len(cmps)
        assert all(c["unique_id"] == f"{NODE}_{oid}" for oid, c in cmps.items())
        assert cmps["person_occupancy"]["state_topic"] == f"{PREFIX}/person/occupancy"
        assert cmps["traffic_light_occupancy"]["state_topic"] == f"{PREFIX}/traffic_light/occupancy"
        assert cmps["snapshot"] == {**cmps["snapshot"], "p": "camera", "topic": f"{PREFIX}/snapshot"}
        assert cmps["person_snapshot"]["p"] == "image"
        assert cmps["person_snapshot"]["image_topic"] == f"{PREFIX}/person/snapshot"
        assert cmps["person_event"]["p"] == "event"
        assert cmps["person_event"]["event_types"] == ["start", "end"]
        assert cmps["person_event"]["state_topic"] == f"{PREFIX}/person/event"
        assert cmps["threshold"]["command_topic"] == f"{PREFIX}/set/threshold"
        assert cmps["enabled"]["command_topic"] == f"{PREFIX}/set/enabled"
        assert cmps["snapshot_now"]["command_topic"] == f"{PREFIX}/cmd/snapshot"
        assert "object_id" not in json.dumps(cfg)
    finally:
        sink.close()


def test_without_the_tracker_there_is_an_event_entity_but_no_image():
    cmps = device_discovery("cam1", Topics(PREFIX), ("person",), "ssd", __version__)["cmps"]
    assert {c["p"] for c in cmps.values()} == {"binary_sensor", "sensor", "camera", "number",
                                               "switch", "button", "event"}
    assert cmps["person_event"]["state_topic"] == f"{PREFIX}/person/event"


def test_older_per_entity_configs_are_migrated_in_home_assistants_order(mqtt_broker, tmp_path,
                                                                         subscriber_factory):
    watch = ("person",)
    wanted = device_discovery("cam1", Topics(PREFIX), watch, "ssd", __version__)
    legacy = _legacy(wanted)
    # An older edgecam also watched dogs: that entity is gone for good.
    dog = f"homeassistant/binary_sensor/{NODE}/dog_occupancy/config"
    legacy[dog] = {"name": "dog occupancy", "unique_id": f"{NODE}_dog_occupancy",
                   "state_topic": f"{PREFIX}/dog/occupancy"}
    seeder = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "seed/none")
    for topic, payload in legacy.items():
        seeder.client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)

    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
    assert sub.wait_for(lambda s: len(s.messages) >= len(legacy), 10)
    seen = len(sub.messages)
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(watch), tmp_path / "state", "ssd")
    try:
        migrated = [t for t in legacy if t != dog]
        assert sub.wait_for(lambda s: all(s.on(t)[-1:] == [b""] for t in legacy)
                            and _device_configs(s), 10)
        log = [(m.topic, m.payload) for m in sub.messages[seen:]]
        device_at = [i for i, (t, _) in enumerate(log) if t == DEVICE_TOPIC]
        assert len(device_at) == 1 and json.loads(log[device_at[0]][1]) == wanted
        for topic in migrated:
            steps = [(i, p) for i, (t, p) in enumerate(log) if t == topic]
            # 1. the migrate marker, 2. the clear, 3. (after every marker and clear) the
            # device config: the order a real HA migrates without a warning.
            assert [p for _, p in steps] == [MIGRATE.encode(), b""], topic
            assert steps[0][0] < steps[1][0] < device_at[0], topic
        assert [p for t, p in log if t == dog] == [b""]  # no marker: HA deletes it
        late = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/+/+/+/config")
        late2 = subscriber_factory(mqtt_broker.host, mqtt_broker.port, DEVICE_TOPIC)
        assert late2.wait_for(lambda s: s.messages, 5)
        time.sleep(0.5)  # retained messages, if any were left, arrive with the subscription
        assert [m.topic for m in late.messages if m.payload] == []
    finally:
        sink.close()


def test_an_interrupted_migration_is_finished(mqtt_broker, tmp_path, subscriber_factory):
    """A run killed between the marker and the clear left the marker retained: the next run
    publishes the device config and clears it."""
    topic = f"homeassistant/sensor/{NODE}/person_count/config"
    seeder = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "seed/none")
    seeder.client.publish(topic, MIGRATE, qos=1, retain=True).wait_for_publish(5)
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
    assert sub.wait_topic(topic)
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(), tmp_path / "state", "ssd")
    try:
        assert sub.wait_for(lambda s: s.on(topic)[-1:] == [b""] and _device_configs(s), 10)
        assert sub.on(topic) == [MIGRATE.encode(), b""]
    finally:
        sink.close()


def test_each_device_config_is_sent_once_at_connect(mqtt_broker, tmp_path, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "homeassistant/#")
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(("person", "dog")),
                          tmp_path / "state", "ssd")
    try:
        assert sub.wait_for(lambda s: _device_configs(s), 10)
        # Anything sent a second time arrives right behind the first copy; give it time.
        time.sleep(1.5)
        sent = Counter(m.topic for m in sub.messages)
        assert sent[DEVICE_TOPIC] == 1
    finally:
        sink.close()


def test_home_assistants_birth_message_is_answered_after_the_delay(mqtt_broker, tmp_path,
                                                                   subscriber_factory):
    asked = []

    def delay():
        asked.append(time.monotonic())
        return 0.3

    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, DEVICE_TOPIC)
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker), detect_config(), tmp_path / "state", "ssd",
                          discovery_options={"delay": delay})
    try:
        assert sub.wait_for(lambda s: len(s.messages) == 1, 10)
        ha = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "none/none")
        sent = time.monotonic()
        ha.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        assert sub.wait_for(lambda s: len(s.messages) == 2, 10)
        arrived = time.monotonic()
        assert len(asked) == 1 and arrived - sent >= 0.3
        assert sub.messages[1].payload == sub.messages[0].payload
        ha.client.publish("homeassistant/status", "offline", qos=1).wait_for_publish(5)
        time.sleep(0.6)
        assert len(sub.messages) == 2 and len(asked) == 1  # HA going away asks for nothing
    finally:
        sink.close()


def test_the_random_birth_delay_stays_within_five_seconds():
    delays = [random_birth_delay() for _ in range(2000)]
    assert 0.0 <= min(delays) and max(delays) <= BIRTH_DELAY_MAX == 5.0
    assert max(delays) - min(delays) > 4.0  # spread over the range, not a constant
