"""Wires the MQTT side together from the configuration (the one entry point for the pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Tuple

from .. import __version__
from ..settings import LiveSettings
from .dispatcher import Dispatcher
from .ha_discovery import HaDiscovery, device_discovery
from .identity import resolve_device_id, topic_prefix
from .mqtt import communicator_from_config, login_from_config
from .reliable import ReliablePublisher
from .spool import SPOOL_FILE, Spool
from .topics import Topics

if TYPE_CHECKING:  # for the return type only; build_mqtt imports the sink when it runs
    from .mqtt import MqttCommunicator
    from .sink import MqttSink


def build_mqtt(
    mqtt_cfg,
    detect_cfg,
    state_dir: Path,
    model_name: str,
    stats_source: Callable[[], int] = lambda: 0,
    env: Optional[Mapping[str, str]] = None,
    annotate=None,
    tracked_events: bool = False,
    backend: str = "cpu",
    discovery_options: Optional[dict] = None,
) -> Tuple[MqttSink, MqttCommunicator, Dispatcher, LiveSettings]:
    """Build and start the MQTT side: returns (sink, communicator, dispatcher, live_settings).

    Returns at once even when the broker is unreachable (connection happens in the
    background). `annotate(result) -> image` draws snapshots. `stats_source()` gives the dropped-frame
    count. `tracked_events`: the events are the tracker's (discovery then offers its entities).
    The sink publishes what the pipeline's processors put on `result.events`.
    `backend`: the detector backend, carried by stats and discovery. `discovery_options`: extra
    HaDiscovery arguments (tests: `delay`, the wait before answering HA's birth message). Shut everything down with
    `sink.close()`.
    """
    from .sink import MqttSink  # here: it imports numpy

    discovery_options = discovery_options or {}
    device_id = resolve_device_id(mqtt_cfg.device_id)
    topics = Topics(topic_prefix(mqtt_cfg.prefix, device_id))
    login = login_from_config(mqtt_cfg, mqtt_cfg.client_id or f"edgecam-{device_id}", env)
    comm = communicator_from_config(mqtt_cfg, login, topics.availability)
    live = LiveSettings(threshold=detect_cfg.threshold, enabled=True)
    reliable = ReliablePublisher(comm, Spool(Path(state_dir) / SPOOL_FILE, mqtt_cfg.spool_max))
    sink = MqttSink(
        comm,
        reliable,
        topics,
        device_id,
        model_name,
        detect_cfg.watch,
        mqtt_cfg,
        dropped=stats_source,
        annotate=annotate,
        backend=backend,
    )
    dispatcher = Dispatcher(comm, topics, live)
    dispatcher.register_command("snapshot", sink.request_snapshot)
    dispatcher.start()
    if mqtt_cfg.discovery:
        payload = device_discovery(
            device_id, topics, detect_cfg.watch, model_name, __version__, backend, tracking=tracked_events
        )
        HaDiscovery(comm, payload, mqtt_cfg.discovery_prefix, device_id, **discovery_options).start()
    reliable.start()
    comm.start()
    return sink, comm, dispatcher, live
