"""Home Assistant MQTT discovery, device-based (HA >= 2024.11): one retained config per camera.

The config lives on `<discovery_prefix>/device/edgecam_<device>/config` and carries the device
(`dev`), the origin (`o`), the shared availability and every entity under `cmps`, keyed by the
object id the per-entity configs of older edgecam versions used. Those older configs
(`<discovery_prefix>/<component>/edgecam_<device>/<object_id>/config`) are migrated with Home
Assistant's `migrate_discovery` procedure, so entity ids, settings and history are kept:

1. `{"migrate_discovery": true}` (retained) on each old topic: HA unloads the entity but keeps
   its registry entry;
2. an empty retained payload on each old topic: nothing is left behind, and HA deletes nothing
   because the entity was unloaded for migration;
3. the device config: HA takes each component over by its discovery id (`edgecam_<device>
   <object_id>`, the same in both schemas) and unique_id, unchanged.

HA's own log line asks for the empty payload after the device config; done in that order a
real HA (2025.4) keeps every registry entry too but logs a "conflicting MQTT discovery message"
warning per entity, as the new entity sees a message on a topic that is not its own. In this
order the same run keeps every entity id and registry id and logs nothing
(scripts/check_ha_migration.py runs a real HA across the upgrade).

The device config is held back on the first connect until every retained old config has been
seen (a sync message to ourselves follows the subscription), so step 1 always reaches HA
before steps 2 and 3. An old config whose unique_id is no longer wanted (a label removed from
`watch`) is cleared as before, which deletes that entity. The config is re-sent after HA's
birth message (`<discovery_prefix>/status` = `online`) after a random delay of 0-5 s, as HA
asks of fleets, so twenty cameras do not answer in the same instant.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from typing import Callable, Dict, Iterable, List, Optional, Set

from .. import backends
from ..labels import slug
from .base import Communicator
from .topics import Topics

log = logging.getLogger("edgecam.mqtt")

SUPPORT_URL = "https://github.com/edgecam/edgecam"
MIGRATE = json.dumps({"migrate_discovery": True})
SYNC_TIMEOUT = 5.0  # seconds to wait for the sync message before publishing anyway
BIRTH_DELAY_MAX = 5.0  # seconds: HA's docs ask fleets to spread their answers to the birth message


def node_id(device_id: str) -> str:
    """The discovery node id of a device (also the device config's object id)."""
    return f"edgecam_{slug(device_id)}"


def device_config_topic(discovery_prefix: str, device_id: str) -> str:
    """Where the device's one discovery config is retained."""
    return f"{discovery_prefix}/device/{node_id(device_id)}/config"


def legacy_config_filter(discovery_prefix: str, device_id: str) -> str:
    """The filter matching every per-entity config an older edgecam left for this device."""
    return f"{discovery_prefix}/+/{node_id(device_id)}/+/config"


def device_block(device_id: str, model_name: str, sw_version: str) -> dict:
    """The one HA device all entities of this camera belong to."""
    return {
        "identifiers": [node_id(device_id)],
        "name": f"edgecam {device_id}",
        "manufacturer": "edgecam",
        "model": model_name,
        "sw_version": sw_version,
    }


def origin_block(sw_version: str) -> dict:
    """Who publishes the config (HA shows it in the device's MQTT info and its logs)."""
    return {"name": "edgecam", "sw_version": sw_version, "support_url": SUPPORT_URL}


def device_discovery(
    device_id: str,
    topics: Topics,
    watch: Iterable[str],
    model_name: str,
    sw_version: str,
    backend: str = "cpu",
    tracking: bool = False,
) -> dict:
    """The device-based discovery payload: `dev`, `o`, shared availability and `cmps`.

    `backend`: the detector backend (one whose sensor times itself, the AI Camera, also gets
    its sensor's inference time).
    Each watched label has an `event` entity (its starts and ends: per tracked object with the
    tracker, per stretch of time in view without); `tracking`: the tracker runs, so each label
    also has an `image` entity (the best frame of its last tracked object).
    """
    node = node_id(device_id)
    components: Dict[str, dict] = {}

    def add(platform: str, object_id: str, name: str, **fields) -> None:
        components[object_id] = {"p": platform, "unique_id": f"{node}_{object_id}", "name": name, **fields}

    for label in dict.fromkeys(watch):
        key = slug(label)
        add(
            "binary_sensor",
            f"{key}_occupancy",
            f"{label} occupancy",
            state_topic=topics.occupancy(label),
            payload_on="ON",
            payload_off="OFF",
            device_class="occupancy",
        )
        add(
            "sensor",
            f"{key}_count",
            f"{label} count",
            state_topic=topics.count(label),
            value_template="{{ value_json.count }}",
            state_class="measurement",
            icon="mdi:counter",
        )
        add(
            "event",
            f"{key}_event",
            f"{label} event",
            state_topic=topics.label_event(label),
            event_types=["start", "end"],
            icon="mdi:motion-sensor",
        )
        if tracking:
            add(
                "image",
                f"{key}_snapshot",
                f"{label} snapshot",
                image_topic=topics.label_snapshot(label),
                content_type="image/jpeg",
            )
    add(
        "sensor",
        "inference_ms",
        "Inference time",
        state_topic=topics.stats,
        value_template="{{ value_json.inference_ms.p50 }}",
        unit_of_measurement="ms",
        state_class="measurement",
        entity_category="diagnostic",
        icon="mdi:timer-outline",
    )
    add(
        "sensor",
        "detector",
        "Detector",
        state_topic=topics.stats,
        value_template="{{ value_json.backend }}",
        entity_category="diagnostic",
        icon="mdi:chip",
    )
    if backends.info(backend).sensor_time:
        add(
            "sensor",
            "sensor_inference_ms",
            "Sensor inference time",
            state_topic=topics.stats,
            value_template="{{ value_json.sensor_inference_ms.p50 }}",
            unit_of_measurement="ms",
            state_class="measurement",
            entity_category="diagnostic",
            icon="mdi:timer-outline",
        )
    add("camera", "snapshot", "Snapshot", topic=topics.snapshot)
    add(
        "binary_sensor",
        "camera_status",
        "Camera",
        state_topic=topics.camera_status,
        payload_on="online",
        payload_off="offline",
        device_class="connectivity",
        entity_category="diagnostic",
    )
    add(
        "number",
        "threshold",
        "Detection threshold",
        command_topic=topics.set("threshold"),
        state_topic=topics.setting_state("threshold"),
        value_template="{{ value_json.value }}",
        min=0.0,
        max=1.0,
        step=0.01,
        mode="box",
        entity_category="config",
    )
    add(
        "switch",
        "enabled",
        "Detection",
        command_topic=topics.set("enabled"),
        state_topic=topics.setting_state("enabled"),
        value_template="{{ 'ON' if value_json.value else 'OFF' }}",
        payload_on="ON",
        payload_off="OFF",
        state_on="ON",
        state_off="OFF",
        entity_category="config",
    )
    add(
        "button", "snapshot_now", "Take snapshot", command_topic=topics.cmd("snapshot"), payload_press="PRESS"
    )
    return {
        "dev": device_block(device_id, model_name, sw_version),
        "o": origin_block(sw_version),
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "cmps": components,
    }


def ha_event_payload(ev, image_topic: Optional[str] = None) -> dict:
    """The `event` entity's payload for a tracked object's `start` or `end` (`ev`: a
    datatypes.Event): `event_type` plus what an automation tests without a template, as the
    entity's attributes: the label, the zones (a list, and `in_<zone>: true` for each, so a
    state condition can say "in zone driveway"), the score, and when present the snapshot
    (`snapshot`: the file written, `image_topic`: where its JPEG went) and the clip."""
    payload = {
        "event_type": ev.kind,
        "id": ev.id,
        "label": ev.label,
        "score": ev.top_score,
        "zones": list(ev.zones),
        **{f"in_{slug(zone)}": True for zone in ev.zones},
        "start_ts": ev.first_seen,
    }
    if ev.kind == "end":
        payload.update(end_ts=ev.last_seen, duration_s=ev.duration, reason=ev.reason)
    if ev.snapshot_path is not None:
        payload["snapshot"] = ev.snapshot_path
    if image_topic is not None:
        payload["image_topic"] = image_topic
    for key in ("clip", "clip_seconds", "clip_url"):
        if getattr(ev, key, None) is not None:
            payload[key] = getattr(ev, key)
    return payload


def random_birth_delay() -> float:
    """A delay in [0, BIRTH_DELAY_MAX] s before answering HA's birth message."""
    return random.uniform(0.0, BIRTH_DELAY_MAX)


class HaDiscovery:
    """Publishes the device config, migrates or clears older per-entity configs, and answers
    HA's birth message. `delay()` gives the wait before that answer (injectable for tests)."""

    def __init__(
        self,
        comm: Communicator,
        payload: dict,
        discovery_prefix: str,
        device_id: str,
        delay: Callable[[], float] = random_birth_delay,
    ):
        self._comm = comm
        self._payload = json.dumps(payload)
        self._prefix = discovery_prefix
        self._device_id = device_id
        self._topic = device_config_topic(discovery_prefix, device_id)
        self._sync_topic = f"{discovery_prefix}/device/{node_id(device_id)}/sync"
        self._wanted: Set[str] = {c["unique_id"] for c in payload["cmps"].values()}
        self._delay = delay
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._synced = False
        self._to_clear: List[str] = []
        self.migrated: List[str] = []  # old topics handed over to the device config
        self.cleared: List[str] = []  # old topics of entities no longer wanted
        self.published = 0  # times the device config was sent (tests, the fleet bench)

    def start(self) -> None:
        """Watch for old configs, HA restarts and our sync message; the config goes out once
        the retained old configs have been seen (after the first connect)."""
        self._comm.subscribe(legacy_config_filter(self._prefix, self._device_id), self._on_legacy)
        self._comm.subscribe(f"{self._prefix}/status", self._on_ha_status)
        self._comm.subscribe(self._sync_topic, self._on_sync)
        self._comm.add_connection_listener(self._on_connection)

    def publish_all(self) -> None:
        """(Re)publish the device config, retained."""
        with self._lock:
            self.published += 1
        self._comm.publish(self._topic, self._payload, retain=True, qos=1)

    # -- callbacks (the transport's network thread) ----------------------------------------
    def _on_connection(self, up: bool) -> None:
        if up and not self._synced:
            # Published after the subscriptions on the same connection: the broker delivers
            # every retained old config before this comes back to us.
            token = self._token = uuid.uuid4().hex
            self._comm.publish(self._sync_topic, token, qos=1)
            # A broker ACL that refuses the sync topic must not keep the config back for good.
            timer = threading.Timer(SYNC_TIMEOUT, self._sync_timed_out, args=(token,))
            timer.daemon = True
            timer.start()

    def _on_sync(self, _topic: str, payload: bytes) -> None:
        self._synced_by(payload.decode("utf-8", "replace"))

    def _sync_timed_out(self, token: str) -> None:
        if self._comm.connected and self._synced_by(token):
            log.warning(
                "mqtt: %s did not come back within %.0f s (does the broker's ACL allow "
                "it?); Home Assistant discovery published without waiting for it",
                self._sync_topic,
                SYNC_TIMEOUT,
            )

    def _synced_by(self, token: str) -> bool:
        with self._lock:
            if self._synced or token != self._token:
                return False
            self._synced = True
        self._hand_over()
        return True

    def _on_legacy(self, topic: str, payload: bytes) -> None:
        if not payload:
            return
        try:
            config = json.loads(payload)
        except ValueError:
            config = None
        if isinstance(config, dict) and config.get("migrate_discovery"):
            # Before the sync: step 1 of an interrupted run, to be cleared by step 2; after
            # it: our own step 1 coming back, already cleared.
            if not self._synced:
                self._queue_clear(topic)
            return
        unique_id = config.get("unique_id") if isinstance(config, dict) else None
        if unique_id in self._wanted:
            log.info("mqtt: migrating Home Assistant discovery %s to the device config", topic)
            self.migrated.append(topic)
            self._comm.publish(topic, MIGRATE, retain=True, qos=1)
            self._queue_clear(topic)
        else:
            log.info("mqtt: clearing stale Home Assistant discovery config %s", topic)
            self.cleared.append(topic)
            self._comm.publish(topic, b"", retain=True, qos=1)
            return
        if self._synced:  # a late old config: hand it over at once
            self._hand_over()

    def _queue_clear(self, topic: str) -> None:
        with self._lock:
            if topic not in self._to_clear:
                self._to_clear.append(topic)

    def _hand_over(self) -> None:
        # Steps 2 and 3, in this order on the one connection, after every step 1.
        with self._lock:
            clear, self._to_clear = self._to_clear, []
        for topic in clear:
            self._comm.publish(topic, b"", retain=True, qos=1)
        self.publish_all()

    def _on_ha_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            timer = threading.Timer(max(0.0, float(self._delay())), self.publish_all)
            timer.daemon = True
            timer.start()
