"""Real mosquitto brokers for the MQTT tests: plain, restartable, TLS, and password + ACL.

Each broker runs on 127.0.0.1 with a free port and a config file in the test's tmp_path;
it is killed after the test. `Subscriber` is a real paho client collecting messages.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


# Ports handed out by free_port: below the kernel's ephemeral range (32768-60999 by default),
# where a port asked of the kernel (bind to 0) lies and where any outgoing connection of
# another test may take it before the server the test starts binds it; one band per pytest-xdist
# worker, so two workers never hand out the same port.
PORT_BAND = 2000
_next_port = [0]


def free_port() -> int:
    """A TCP port nobody listens on right now, never handed out before in this test run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    first = 20000 + (index % 6) * PORT_BAND
    while _next_port[0] < PORT_BAND:
        port = first + _next_port[0]
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port left in {first}-{first + PORT_BAND - 1}")


class Broker:
    """One mosquitto process that can be SIGKILLed and started again on the same port."""

    def __init__(self, workdir: Path, extra_conf: str = "", anonymous: bool = True,
                 persistent: bool = False):
        self.host, self.port = "127.0.0.1", free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"{user}listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            + (f"persistence true\npersistence_location {workdir}/\n" if persistent
               else "persistence false\n") +
            f"log_dest file {self.log}\nlog_type all\n{extra_conf}")
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Broker":
        """Start and wait until the port accepts connections."""
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()} "
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown, like a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        """SIGTERM the broker, as a service restart does (a persistent one saves its sessions)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


def _make_broker(tmp_path: Path, name: str, extra: str = "", anonymous: bool = True):
    work = tmp_path / name
    work.mkdir()
    return Broker(work, extra, anonymous)


@pytest.fixture
def mqtt_broker(tmp_path):
    """A running anonymous mosquitto; yields the Broker (host, port, kill(), start())."""
    broker = _make_broker(tmp_path, "broker").start()
    yield broker
    broker.kill()


@pytest.fixture
def mqtt_broker_restartable(mqtt_broker):
    """The same broker, for tests that kill() and start() it again on the same port."""
    return mqtt_broker


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """A CA, a server certificate it signed (CN/SAN 127.0.0.1) and an unrelated CA, made with
    openssl once per session (RSA key generation is the slow part): the folder."""
    certs = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN=edgecam test {ca}",
                 cwd=certs)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=certs)
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
             cwd=certs)
    return certs


@pytest.fixture
def mqtt_tls_broker(tmp_path, tls_certs):
    """mosquitto with TLS only, serving `tls_certs`' server certificate.

    The Broker gets `.ca` (the CA file a client must trust) and `.other_ca` (an unrelated CA).
    """
    certs = tls_certs
    broker = _make_broker(tmp_path, "tls_broker",
                          f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'server.crt'}\n"
                          f"keyfile {certs / 'server.key'}\n")
    broker.ca, broker.other_ca = str(certs / "ca.crt"), str(certs / "other_ca.crt")
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def mqtt_acl_broker(tmp_path):
    """mosquitto requiring a password, with an ACL: user `cam1` (password `cam1-secret`) may
    write only under `edgecam/cam1/#` (and its HA discovery node); user `watcher`
    (`watcher-secret`) may read everything. `.password_file` holds cam1's password."""
    work = tmp_path / "acl_broker"
    work.mkdir()
    passwd = work / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwd), "cam1", "cam1-secret"], check=True)
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "watcher", "watcher-secret"], check=True)
    acl = work / "acl"
    acl.write_text("user cam1\ntopic readwrite edgecam/cam1/#\n"
                   "topic readwrite homeassistant/+/edgecam_cam1/#\ntopic read homeassistant/status\n\n"
                   "user watcher\ntopic read #\n")
    broker = Broker(work, f"password_file {passwd}\nacl_file {acl}\n", anonymous=False)
    broker.password_file = work / "cam1.password"
    broker.password_file.write_text("cam1-secret\n")
    broker.start()
    yield broker
    broker.kill()


class Subscriber:
    """A real paho client recording (topic, payload, retain) of everything it receives."""

    def __init__(self, host: str, port: int, topic: str = "#", *, username=None, password=None,
                 ca=None, protocol=paho.MQTTv5):
        self.messages: List[paho.MQTTMessage] = []
        self._cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=ca)
        self._subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("subscriber could not subscribe")

    def _on_message(self, _c, _u, msg) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def on(self, topic: str) -> list:
        """Payloads received on `topic`, oldest first."""
        with self._cond:
            return [m.payload for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[["Subscriber"], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate(self)` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def wait_topic(self, topic: str, timeout: float = 10.0, count: int = 1) -> list:
        """Wait for at least `count` messages on `topic`; return their payloads."""
        self.wait_for(lambda s: len(s.on(topic)) >= count, timeout)
        return self.on(topic)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber_factory():
    """Make Subscribers that are closed after the test: factory(host, port, topic, **kw)."""
    made: List[Subscriber] = []

    def make(host, port, topic="#", **kw):
        sub = Subscriber(host, port, topic, **kw)
        made.append(sub)
        return sub
    yield make
    for sub in made:
        sub.close()
