"""The paho-mqtt 2.x transport: background connect, backoff, last will, TLS, never blocking.

All network work happens on paho's loop thread (`loop_start`); `publish` only queues. The
broker being down at start or going away is logged once per state change and retried with
exponential backoff; nothing here raises into the capture/inference threads.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections import OrderedDict
import dataclasses
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ..errors import EdgecamError
from .acks import AckFilter
from .base import AckListener, Communicator, ConnectionListener, MessageCallback, Payload
from .identity import read_password
from .packets import DEFAULT_MAX_PACKET, packet_size, payload_budget

log = logging.getLogger("edgecam.mqtt")

ONLINE = "online"
OFFLINE = "offline"
SESSION_TAKEN_OVER = 142  # MQTT 5 reason code: another client connected with our client id
TAKEOVER_WINDOW = 3.0  # s: connections closed this soon after they were made look like takeovers
TAKEOVER_DROPS = 3  # ...when this many come in a row
PROTOCOLS = {"5": paho.MQTTv5, "3.1.1": paho.MQTTv311}


@dataclass(frozen=True)
class BrokerLogin:
    """How one client logs in: its id, protocol version, credentials and TLS files."""

    client_id: str
    protocol: str = "5"  # a key of PROTOCOLS
    username: Optional[str] = None
    password: Optional[str] = None
    tls_ca: Optional[str] = None  # a CA file (or a client certificate) turns TLS on
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    tls_insecure: bool = False  # no check of the broker's certificate

    @property
    def tls(self) -> bool:
        """True when the connection is encrypted."""
        return bool(self.tls_ca or self.tls_cert)


def login_from_config(cfg, client_id: str, env: Optional[Mapping[str, str]] = None) -> BrokerLogin:
    """The BrokerLogin of an `MqttConfig`; the password from its password_file, else from
    EDGECAM_MQTT_PASSWORD in `env` (an EdgecamError when the file cannot be read)."""
    return BrokerLogin(
        client_id,
        cfg.protocol,
        cfg.user,
        read_password(cfg.password_file, env),
        cfg.tls_ca,
        cfg.tls_cert,
        cfg.tls_key,
        cfg.tls_insecure,
    )


def paho_client(login: BrokerLogin, will_topic: Optional[str] = None) -> paho.Client:
    """The one place a paho client is made (the service, listen, doctor, probe, the bench).

    Callback API 2; `will_topic` gets a retained `offline` as the last will. A bad protocol
    or a missing or unusable TLS file is an EdgecamError naming it.
    """
    if login.protocol not in PROTOCOLS:
        raise EdgecamError(f"mqtt protocol {login.protocol!r}: must be one of {', '.join(PROTOCOLS)}")
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=login.client_id, protocol=PROTOCOLS[login.protocol]
    )
    if will_topic:
        client.will_set(will_topic, OFFLINE, qos=1, retain=True)
    if login.username:
        client.username_pw_set(login.username, login.password)
    if login.tls:
        _set_tls(client, login)
    return client


def _set_tls(client: paho.Client, login: BrokerLogin) -> None:
    for kind, path in (
        ("TLS CA", login.tls_ca),
        ("TLS client certificate", login.tls_cert),
        ("TLS client key", login.tls_key),
    ):
        if path and not os.path.isfile(path):
            raise EdgecamError(f"mqtt {kind} file not found: {path}")
    if bool(login.tls_cert) != bool(login.tls_key):
        raise EdgecamError("mqtt TLS: give both a client certificate and its key, or neither")
    try:
        client.tls_set(
            ca_certs=login.tls_ca,
            certfile=login.tls_cert,
            keyfile=login.tls_key,
            cert_reqs=ssl.CERT_NONE if login.tls_insecure else ssl.CERT_REQUIRED,
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise EdgecamError(
            f"mqtt TLS setup failed ({exc}): check the CA, certificate and key files"
        ) from None
    if login.tls_insecure:
        client.tls_insecure_set(True)


class DirectPublisher:
    """A connected client that publishes at once, with no spool or availability topic: what
    `probe --mqtt` and the bench use to measure a real publish. `close()` disconnects."""

    def __init__(self, host: str, port: int, client_id: str):
        self._client = paho_client(BrokerLogin(client_id))
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise EdgecamError(
                f"cannot connect to the MQTT broker {host}:{port} "
                f"({exc.strerror or exc}): check --mqtt HOST[:PORT]"
            ) from None
        self._client.loop_start()

    def __call__(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 0 (queued for paho's network thread)."""
        self._client.publish(topic, payload)

    def publish_retained(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        """Publish a retained QoS 1 message and wait until the broker has it."""
        self._client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()


class MqttCommunicator(Communicator):
    """A `Communicator` over one paho client with availability and a retained-state cache.

    Every retained message published is remembered (latest per topic) and published again
    after each reconnect, so subscribers see current state even if the broker lost it or
    was down when it changed. While disconnected a retained message is only remembered: the
    next connect sends it, once.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        client_id: str,
        availability_topic: str,
        protocol: str = "5",
        keepalive: int = 60,
        username: Optional[str] = None,
        password: Optional[str] = None,
        tls_ca: Optional[str] = None,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
        tls_insecure: bool = False,
        reconnect_min: int = 1,
        reconnect_max: int = 60,
        max_packet: int = DEFAULT_MAX_PACKET,
    ):
        self.host, self.port = host, port
        self.max_packet = max_packet
        self._mqtt5 = protocol == "5"
        self._too_big: set = set()  # topics already warned about
        self.availability_topic = availability_topic
        self._keepalive = keepalive
        self._backoff = (reconnect_min, reconnect_max)
        self._lock = threading.Lock()
        self._subs: List[Tuple[str, MessageCallback]] = []
        self._retained: "OrderedDict[str, Tuple[bytes, int]]" = OrderedDict()
        self._conn_listeners: List[ConnectionListener] = []
        self._ack_listeners: List[AckListener] = []
        self._acks = AckFilter()
        self._connected = False
        self._connected_at = 0.0
        self._short_drops = 0
        self._client_id = client_id
        self._ever_connected = False
        self._reported: Optional[str] = None  # last state logged, so each is logged once
        self._stopping = False
        login = BrokerLogin(client_id, protocol, username, password, tls_ca, tls_cert, tls_key, tls_insecure)
        self._tls = login.tls
        self._client = paho_client(login, will_topic=availability_topic)
        self._client.reconnect_delay_set(reconnect_min, reconnect_max)
        # No cap on paho's queue: the spool bounds what we hand over.
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish

    # -- Communicator -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a session with the broker is up."""
        return self._connected

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        """Call `listener(True)` after every (re)connect, `listener(False)` on every loss."""
        self._conn_listeners.append(listener)

    def add_ack_listener(self, listener: AckListener) -> None:
        """Call `listener(mid, accepted)` when the broker acknowledges a QoS>0 message."""
        self._ack_listeners.append(listener)

    def payload_budget(self, topic: str, qos: int = 0) -> Optional[int]:
        """The largest payload `publish` sends on `topic` (a bigger one is dropped)."""
        return payload_budget(topic, qos, self.max_packet, self._mqtt5)

    def publish(self, topic: str, payload: Payload, retain: bool = False, qos: int = 0) -> Optional[int]:
        """Queue a message; returns its mid for QoS>0 (kept across reconnects), else None.
        A message whose packet would exceed `max_packet` is dropped (a warning once per topic)."""
        data = payload.encode("utf-8") if isinstance(payload, str) else (payload or b"")
        size = packet_size(topic, len(data), qos, self._mqtt5)
        if size > self.max_packet:
            if topic not in self._too_big:
                self._too_big.add(topic)
                log.warning(
                    "mqtt: not sending %d bytes on %s: over [mqtt] max_packet = %d "
                    "(raise it, and the broker's max_packet_size, to send it)",
                    size,
                    topic,
                    self.max_packet,
                )
            return None
        if retain:
            with self._lock:
                if data:
                    self._retained[topic] = (data, qos)
                    self._retained.move_to_end(topic)
                    if not self._connected:
                        # paho would queue a QoS 1 copy and the connect re-sends the cache:
                        # every retained message (discovery configs...) would go out twice.
                        return None
                else:
                    self._retained.pop(topic, None)
        try:
            info = self._client.publish(topic, data, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            log.warning("mqtt: cannot publish on %r: %s", topic, exc)
            return None
        if qos == 0 or info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            return None
        acked = self._acks.sent(info.mid)
        if acked is not None:  # the PUBACK beat publish() back here
            self._forward_ack(info.mid, acked)
        return info.mid

    def subscribe(self, topic: str, callback: MessageCallback) -> None:
        """Route messages matching `topic` to `callback(topic, payload)`; kept across reconnects."""
        with self._lock:
            self._subs.append((topic, callback))
        if self._connected:
            self._client.subscribe(topic, qos=1)

    def start(self) -> None:
        """Start connecting in the background (returns at once even when the broker is down)."""
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()

    def stop(self, timeout: float = 2.0) -> None:
        """Publish `offline`, disconnect and stop the network thread, within about `timeout`."""
        self._stopping = True
        if self._connected:
            info = self._client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        # loop_stop joins paho's thread, which may sit in a TCP connect to a dead broker.
        stopper = threading.Thread(target=self._client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(timeout)
        self._connected = False

    # -- paho callbacks (network thread) -------------------------------------------------
    def _report(self, state: str, message: str, *args, level: int = logging.INFO) -> None:
        if state != self._reported:
            self._reported = state
            log.log(level, message, *args)

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._report(
                f"refused:{reason_code}",
                "mqtt: broker %s:%s refused the connection: %s (check user, password and ACL); retrying",
                self.host,
                self.port,
                reason_code,
                level=logging.ERROR,
            )
            return
        client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
        with self._lock:
            # Under the lock with the copy: a retained publish sees either connected (and
            # sends it itself) or not (and it is in this copy), never neither.
            self._connected = True
            self._connected_at = time.monotonic()
            subs = list(self._subs)
            retained = list(self._retained.items())
        for topic in dict.fromkeys(t for t, _ in subs):
            client.subscribe(topic, qos=1)
        for topic, (data, qos) in retained:
            client.publish(topic, data, qos=qos, retain=True)
        self._report(
            "connected",
            "mqtt: %s to broker %s:%s",
            "reconnected" if self._ever_connected else "connected",
            self.host,
            self.port,
        )
        self._ever_connected = True
        self._notify(True)

    def _on_connect_fail(self, _client, _userdata) -> None:
        self._short_drops = 0  # the broker is away, nobody took our place
        self._report(
            "unreachable",
            "mqtt: cannot reach broker %s:%s (check host and port%s); "
            "edgecam keeps running and retries in the background (backoff %s..%s s)",
            self.host,
            self.port,
            ", TLS CA and certificates" if self._tls else "",
            *self._backoff,
            level=logging.WARNING,
        )

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        was = self._connected
        self._connected = False
        if was:
            if not self._stopping and self._taken_over(reason_code):
                self._report(
                    "takeover",
                    "mqtt: broker %s:%s dropped this client for another one "
                    "with the same client id %r: two processes share a device id; give "
                    "each its own [mqtt] device_id (retrying every %s s)",
                    self.host,
                    self.port,
                    self._client_id,
                    self._backoff[1],
                    level=logging.ERROR,
                )
                # Two such processes would otherwise kick each other off every second.
                self._client.reconnect_delay_set(self._backoff[1], self._backoff[1])
            elif not self._stopping:
                self._report(
                    "lost",
                    "mqtt: lost connection to broker %s:%s (%s); reconnecting with backoff",
                    self.host,
                    self.port,
                    reason_code,
                    level=logging.WARNING,
                )
            self._notify(False)

    def _taken_over(self, reason_code) -> bool:
        if getattr(reason_code, "value", None) == SESSION_TAKEN_OVER:
            return True
        # Mosquitto 2.0 just closes the socket of the client it replaces (no reason code, in
        # MQTT 5 too). Two processes with one id kick each other off at every reconnect, and
        # each reconnect succeeds at once: TAKEOVER_DROPS connections in a row closed right
        # after they were made, with no failed connect between them. A broker restart fails
        # connects (resetting the count) unless it is back within the backoff, and is never
        # three times in a row within seconds.
        short = time.monotonic() - self._connected_at < TAKEOVER_WINDOW
        self._short_drops = self._short_drops + 1 if short else 0
        return self._short_drops >= TAKEOVER_DROPS

    def _on_message(self, _client, _userdata, msg) -> None:
        with self._lock:
            subs = list(self._subs)
        for pattern, callback in subs:
            if paho.topic_matches_sub(pattern, msg.topic):
                try:
                    callback(msg.topic, msg.payload)
                except Exception:  # a handler bug must not kill paho's thread
                    log.exception("mqtt: handler for %s failed", msg.topic)

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties) -> None:
        accepted = not reason_code.is_failure
        if not accepted:  # only a PUBACK carries a failure, never a written QoS 0 message
            log.warning("mqtt: broker rejected message %s: %s", mid, reason_code)
        if self._acks.reported(mid, accepted):
            self._forward_ack(mid, accepted)

    def _forward_ack(self, mid: int, accepted: bool) -> None:
        for listener in self._ack_listeners:
            listener(mid, accepted)

    def _notify(self, up: bool) -> None:
        for listener in self._conn_listeners:
            try:
                listener(up)
            except Exception:
                log.exception("mqtt: connection listener failed")


def communicator_from_config(cfg, login: BrokerLogin, availability_topic: str) -> MqttCommunicator:
    """A `MqttCommunicator` for an `MqttConfig` (host must be set) logging in as `login`."""
    if not cfg.host:
        raise EdgecamError("mqtt host is not set: give --mqtt HOST[:PORT] or [mqtt] host")
    return MqttCommunicator(
        cfg.host,
        cfg.port,
        availability_topic=availability_topic,
        keepalive=cfg.keepalive,
        max_packet=cfg.max_packet,
        **dataclasses.asdict(login),
    )
