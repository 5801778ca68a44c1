"""Helpers shared by the MQTT tests: configs, real FrameResults, schema validation."""

from __future__ import annotations

import dataclasses
import json
import time
from importlib import resources

import cv2
import jsonschema

from conftest import IMAGES
from edgecam.config import DetectConfig, MqttConfig
from edgecam.datatypes import BBox, Detection, Frame, FrameResult

_IMAGE = None


def mqtt_config(broker, **changes) -> MqttConfig:
    """An MqttConfig for `broker` with short intervals so tests run fast."""
    base = dict(host=broker.host, port=broker.port, device_id="cam1", stats_interval=0.5,
                occupancy_off_delay=0.4, snapshot_interval=0.0, event_start_frames=2,
                event_end_frames=2)
    base.update(changes)
    return dataclasses.replace(MqttConfig(), **base)


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
