"""Helpers shared by the MQTT tests: configs, real FrameResults, schema validation."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from importlib import resources

import cv2
import jsonschema

from conftest import IMAGES
from edgecam import comms
from edgecam.config import Config, DetectConfig, EventsConfig, MqttConfig
from edgecam.label_events import label_events_from_config
from edgecam.processing import IDLE_TICK_S, ProcessorStage
from edgecam.datatypes import BBox, Detection, EndReason, Frame, FrameResult

_IMAGE = None


# The [events] keys, by the names they had under [mqtt] (which config files may still use).
EVENTS_KEYS = {"event_start_frames": "start_frames", "event_end_frames": "end_frames",
               "occupancy_off_delay": "occupancy_off_delay"}


def mqtt_config(broker, **changes) -> Config:
    """A Config whose [mqtt] names `broker`, with short intervals so tests run fast; the
    [events] keys may be given by their [mqtt] names."""
    mqtt = dict(host=broker.host, port=broker.port, device_id="cam1", stats_interval=0.5,
                snapshot_interval=0.0)
    events = dict(start_frames=2, end_frames=2, occupancy_off_delay=0.4)
    for key, value in changes.items():
        if key in EVENTS_KEYS:
            events[EVENTS_KEYS[key]] = value
        else:
            mqtt[key] = value
    return Config(mqtt=dataclasses.replace(MqttConfig(), **mqtt),
                  events=dataclasses.replace(EventsConfig(), **events))


class Wired:
    """The MQTT sink behind the per-label processor, as `edgecam run` wires them (app.run): a
    result goes through the real processor stage first (edgecam.processing, with its pause
    timer), time passes for it every IDLE_TICK_S as in the pipeline's dispatcher, and a lost
    camera or the close ends what is open before the sink is told. Anything else is the
    sink's."""

    def __init__(self, sink, processors, live, pause_ends_after):
        self.sink = sink
        self.stage = ProcessorStage(processors, sink.handle, live, pause_ends_after)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def handle(self, result) -> None:
        with self._lock:
            self.sink.handle(self.stage.frame(result))

    def camera_status(self, online: bool) -> None:
        self.sink.camera_status(online)
        if not online:
            with self._lock:
                self.stage.finish(EndReason.CAMERA_OFFLINE)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._ticker.join(5)
        with self._lock:
            self.stage.finish(EndReason.SHUTDOWN)
        self.sink.close(timeout)

    def __getattr__(self, name):
        return getattr(self.sink, name)

    def _tick(self) -> None:
        while not self._stop.wait(IDLE_TICK_S):
            with self._lock:
                self.stage.idle()


def build_mqtt(config: Config, detect_cfg, state_dir, model_name, *args, tracked_events=False,
               **kwargs):
    """edgecam.comms.build_mqtt for `config` (mqtt_config), its sink Wired behind the per-label
    processor (only counts and occupancy with `tracked_events`: the tracker makes the events)."""
    sink, comm, dispatcher, live = comms.build_mqtt(config.mqtt, detect_cfg, state_dir, model_name,
                                                    *args, tracked_events=tracked_events, **kwargs)
    labels = label_events_from_config(config.events, detect_cfg.watch, tracked_events)
    return (Wired(sink, [labels], live, config.events.occupancy_off_delay), comm, dispatcher,
            live)


def detect_config(watch=("person",)) -> DetectConfig:
    """A DetectConfig watching `watch`."""
    return dataclasses.replace(DetectConfig(), watch=tuple(watch))


def image():
    """A real photo (grace_hopper.bmp), loaded once."""
    global _IMAGE
    if _IMAGE is None:
        _IMAGE = cv2.imread(str(IMAGES / "grace_hopper.bmp"))
    return _IMAGE


PERSON = Detection("person", 0, 0.72, BBox(0.1, 0.05, 0.9, 0.98))
TIE = Detection("tie", 27, 0.66, BBox(0.42, 0.6, 0.58, 0.9))


def frame_result(seq: int, detections=(PERSON, TIE), annotated=True) -> FrameResult:
    """A FrameResult of the real photo with the given detections."""
    img = image()
    frame = Frame(seq=seq, ts=time.time(), mono=time.monotonic(), image=img, source="test")
    return FrameResult(frame, tuple(detections), inference_ms=12.5 + seq % 3,
                       annotated=img.copy() if annotated else None)


def schema(name: str) -> dict:
    """A payload schema shipped in the package."""
    return json.loads(resources.files("edgecam").joinpath("schemas", f"{name}.json").read_text())


def validate(name: str, payload: bytes) -> dict:
    """Parse and validate a JSON payload against schema `name`; returns it."""
    data = json.loads(payload)
    jsonschema.validate(data, schema(name))
    assert data["v"] == 1
    return data
