"""The transport interface the rest of edgecam publishes through (Frigate `comms` style).

Anything implementing `Communicator` can carry edgecam's topics; `MqttCommunicator` is the
real one. Callers never see the transport's errors: publish is fire-and-forget.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional, Union

Payload = Union[bytes, str, None]
MessageCallback = Callable[[str, bytes], None]
ConnectionListener = Callable[[bool], None]
AckListener = Callable[[int, bool], None]


class Communicator(ABC):
    """Publish/subscribe transport with connection and acknowledgement notifications."""

    @abstractmethod
    def publish(self, topic: str, payload: Payload, retain: bool = False, qos: int = 0) -> Optional[int]:
        """Send a message; never blocks or raises. Returns the message id for QoS>0, else None.

        A QoS>0 message handed over while disconnected is kept by the transport and sent after
        the next connect; its acknowledgement arrives through the ack listeners.
        """

    def payload_budget(self, topic: str, qos: int = 0) -> Optional[int]:
        """The largest payload `publish` sends on `topic`; None when there is no limit."""
        return None

    @abstractmethod
    def subscribe(self, topic: str, callback: MessageCallback) -> None:
        """Call `callback(topic, payload)` for every message matching the filter `topic`.

        Subscriptions survive reconnects.
        """

    @abstractmethod
    def start(self) -> None:
        """Begin connecting in the background; returns at once even if the broker is down."""

    @abstractmethod
    def stop(self) -> None:
        """Announce going offline and disconnect cleanly (bounded time)."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while a session with the broker is up."""

    @abstractmethod
    def add_connection_listener(self, listener: ConnectionListener) -> None:
        """Call `listener(True)` after every (re)connect and `listener(False)` on every loss."""

    @abstractmethod
    def add_ack_listener(self, listener: AckListener) -> None:
        """Call `listener(mid, accepted)` when the broker acknowledges a QoS>0 message."""
