"""Home Assistant MQTT discovery: retained entity configs for one device, stale ones cleared.

Config topics are `<discovery_prefix>/<component>/edgecam_<device>/<object_id>/config`. The
node level holds only this device's entities, so subscribing to
`<discovery_prefix>/+/edgecam_<device>/+/config` returns exactly what an earlier run left on the
broker; anything not wanted now (a label removed from `watch`) is cleared with an empty
retained payload. Configs are re-sent when Home Assistant announces itself on
`<discovery_prefix>/status`.
"""

from __future__ import annotations

import json
import logging
from typing import Dict, Iterable

from ..labels import slug
from .base import Communicator
from .topics import Topics

log = logging.getLogger("edgecam.mqtt")


def node_id(device_id: str) -> str:
    """The discovery node id of a device."""
    return f"edgecam_{slug(device_id)}"


def device_block(device_id: str, model_name: str, sw_version: str) -> dict:
    """The one HA device all entities of this camera belong to."""
    return {"identifiers": [node_id(device_id)], "name": f"edgecam {device_id}",
            "manufacturer": "edgecam", "model": model_name, "sw_version": sw_version}


def discovery_configs(device_id: str, topics: Topics, discovery_prefix: str,
                      watch: Iterable[str], model_name: str, sw_version: str,
                      backend: str = "cpu") -> Dict[str, dict]:
    """{config topic: payload} for every entity of the device (`backend`: the detector
    backend; the AI Camera also gets its sensor's inference time)."""
    node = node_id(device_id)
    device = device_block(device_id, model_name, sw_version)
    configs: Dict[str, dict] = {}

    def add(component: str, object_id: str, name: str, **fields) -> None:
        payload = {"name": name, "unique_id": f"{node}_{object_id}",
                   "availability_topic": topics.availability,
                   "payload_available": "online", "payload_not_available": "offline",
                   "device": device, **fields}
        configs[f"{discovery_prefix}/{component}/{node}/{object_id}/config"] = payload

    for label in watch:
        key = slug(label)
        add("binary_sensor", f"{key}_occupancy", f"{label} occupancy",
            state_topic=topics.occupancy(label), payload_on="ON", payload_off="OFF",
            device_class="occupancy")
        add("sensor", f"{key}_count", f"{label} count", state_topic=topics.count(label),
            value_template="{{ value_json.count }}", state_class="measurement",
            icon="mdi:counter")
    add("sensor", "inference_ms", "Inference time", state_topic=topics.stats,
        value_template="{{ value_json.inference_ms.p50 }}", unit_of_measurement="ms",
        state_class="measurement", entity_category="diagnostic", icon="mdi:timer-outline")
    add("sensor", "detector", "Detector", state_topic=topics.stats,
        value_template="{{ value_json.backend }}", entity_category="diagnostic", icon="mdi:chip")
    if backend == "imx500":
        add("sensor", "sensor_inference_ms", "Sensor inference time", state_topic=topics.stats,
            value_template="{{ value_json.sensor_inference_ms.p50 }}", unit_of_measurement="ms",
            state_class="measurement", entity_category="diagnostic", icon="mdi:timer-outline")
    add("camera", "snapshot", "Snapshot", topic=topics.snapshot)
    add("binary_sensor", "camera_status", "Camera", state_topic=topics.camera_status,
        payload_on="online", payload_off="offline", device_class="connectivity",
        entity_category="diagnostic")
    add("number", "threshold", "Detection threshold", command_topic=topics.set("threshold"),
        state_topic=topics.setting_state("threshold"), value_template="{{ value_json.value }}",
        min=0.0, max=1.0, step=0.01, mode="box", entity_category="config")
    add("switch", "enabled", "Detection", command_topic=topics.set("enabled"),
        state_topic=topics.setting_state("enabled"),
        value_template="{{ 'ON' if value_json.value else 'OFF' }}",
        payload_on="ON", payload_off="OFF", state_on="ON", state_off="OFF",
        entity_category="config")
    add("button", "snapshot_now", "Take snapshot", command_topic=topics.cmd("snapshot"),
        payload_press="PRESS")
    return configs


class HaDiscovery:
    """Publishes the device's discovery configs and clears the ones no longer wanted."""

    def __init__(self, comm: Communicator, configs: Dict[str, dict], discovery_prefix: str,
                 device_id: str):
        self._comm = comm
        self._configs = configs
        self._prefix = discovery_prefix
        self._node = node_id(device_id)
        self.cleared: list = []

    def start(self) -> None:
        """Publish every config (retained) and watch for stale ones and HA restarts."""
        self._comm.subscribe(f"{self._prefix}/+/{self._node}/+/config", self._on_config)
        self._comm.subscribe(f"{self._prefix}/status", self._on_ha_status)
        self.publish_all()

    def publish_all(self) -> None:
        """(Re)publish every config, retained."""
        for topic, payload in self._configs.items():
            self._comm.publish(topic, json.dumps(payload), retain=True, qos=1)

    def _on_config(self, topic: str, payload: bytes) -> None:
        if payload and topic not in self._configs:
            log.info("mqtt: clearing stale Home Assistant discovery config %s", topic)
            self.cleared.append(topic)
            self._comm.publish(topic, b"", retain=True, qos=1)

    def _on_ha_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            self.publish_all()
