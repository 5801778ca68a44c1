"""MQTT packet sizes, and JPEGs made to fit under a broker's packet limit.

A broker drops the connection of a client that sends a packet over its `max_packet_size`
(Mosquitto 2.1's default is 2,000,000 bytes), which takes every queued message down with it.
So the transport never sends a packet over `[mqtt] max_packet`, and snapshots are re-encoded
smaller to fit before they reach it.
"""

from __future__ import annotations

import logging
from typing import Optional

log = logging.getLogger("edgecam.mqtt")

DEFAULT_MAX_PACKET = 1_000_000
QUALITIES = (70, 50, 35)  # tried in turn at full size, then the image shrinks
SHRINK = 0.75
MIN_WIDTH = 64


def _varint_len(n: int) -> int:
    size = 1
    while n > 127:
        n >>= 7
        size += 1
    return size


def packet_size(topic: str, payload_len: int, qos: int, mqtt5: bool = True) -> int:
    """Bytes of a PUBLISH packet: fixed header, topic, packet id (QoS > 0), MQTT 5's
    properties length (no properties are sent) and the payload."""
    remaining = 2 + len(topic.encode("utf-8")) + (2 if qos else 0) + (1 if mqtt5 else 0) + payload_len
    return 1 + _varint_len(remaining) + remaining


def payload_budget(topic: str, qos: int, max_packet: int, mqtt5: bool = True) -> int:
    """The largest payload that keeps a PUBLISH on `topic` within `max_packet` bytes."""
    budget = max_packet - packet_size(topic, 0, qos, mqtt5)
    # The remaining-length field grows with the payload: take its largest form.
    return max(0, budget - 3)


def fit_jpeg(jpeg: bytes, budget: Optional[int]) -> Optional[bytes]:
    """`jpeg` itself when it fits in `budget` bytes (None: no limit), else re-encoded at a lower
    quality and then smaller until it fits; None when even a small one does not."""
    if budget is None or len(jpeg) <= budget:
        return jpeg
    import cv2  # OpenCV and numpy only when a snapshot is actually too big
    import numpy as np

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    while image.shape[1] >= MIN_WIDTH:
        for quality in QUALITIES:
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(data) <= budget:
                log.debug(
                    "mqtt: snapshot re-encoded %d -> %d bytes (%dx%d, quality %d)",
                    len(jpeg),
                    len(data),
                    image.shape[1],
                    image.shape[0],
                    quality,
                )
                return data.tobytes()
        image = cv2.resize(
            image, (int(image.shape[1] * SHRINK), int(image.shape[0] * SHRINK)), interpolation=cv2.INTER_AREA
        )
    return None
