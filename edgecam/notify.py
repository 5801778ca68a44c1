"""sd_notify without libsystemd: tell systemd we are ready, alive, busy or stopping.

systemd passes a unix datagram socket in NOTIFY_SOCKET (a path, or an abstract name starting
with '@') and, when WatchdogSec= is set, the interval in WATCHDOG_USEC. Messages are
newline-separated `KEY=value` lines (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1).

`ServiceStatus` is what a run says (edgecam.app.supervise polls it): READY after the first
frame, WATCHDOG=1 only while frames are processed (WatchdogPinger), STATUS, STOPPING.

There is no background thread: a stalled inference loop stops calling progress(), the pings
stop, and systemd kills and restarts the service after WatchdogSec.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable, Mapping, Optional

from .errors import EdgecamError


def _address(raw: str) -> str:
    if raw.startswith("@"):
        # Abstract namespace: a leading NUL instead of '@', no trailing NUL.
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    raise EdgecamError(
        f"NOTIFY_SOCKET={raw!r} is not a unix socket path or @abstract name: "
        "run edgecam under systemd with Type=notify, or unset NOTIFY_SOCKET"
    )


def _format(fields: Mapping[str, object]) -> bytes:
    lines = []
    for key, value in fields.items():
        text = str(value)
        if not key or not key.replace("_", "").isalnum() or key.upper() != key:
            raise ValueError(f"sd_notify field names are upper-case words, got {key!r}")
        # One message is a list of lines; a newline inside a value would forge another field.
        lines.append(f"{key}={' '.join(text.splitlines())}")
    return "\n".join(lines).encode("utf-8")


class Notifier:
    """A client of systemd's notification socket; each method sends one datagram.

    Send failures never raise: a lost status message must not take the camera down. Every
    sending method returns True when the datagram was handed to the kernel.
    """

    def __init__(self, address: str):
        self.address = address
        self._sock: Optional[socket.socket] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Optional["Notifier"]:
        """A Notifier for NOTIFY_SOCKET in `env` (default os.environ), or None when it is unset."""
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        if not raw:
            return None
        return cls(_address(raw))

    def send(self, **fields: object) -> bool:
        """Send KEY=value fields in one datagram, e.g. send(READY=1, STATUS="running")."""
        if not fields:
            return False
        payload = _format(fields)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # A unix datagram queue holds only ~10 messages; if systemd is slow to read,
                # dropping a ping beats blocking the inference loop.
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: Optional[str] = None) -> bool:
        """READY=1 (plus STATUS= when given): the service is up; start-up is complete."""
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """STATUS=text: shown by `systemctl status edgecam`."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """WATCHDOG=1: the service is alive (prefer WatchdogPinger, which rate-limits it)."""
        return self.send(WATCHDOG=1)

    def stopping(self, status: Optional[str] = None) -> bool:
        """STOPPING=1: shutdown has begun (send it first thing on SIGTERM)."""
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def extend_timeout(self, seconds: float, status: Optional[str] = None) -> bool:
        """EXTEND_TIMEOUT_USEC (plus STATUS= when given): ask for more start-up/shutdown time
        (e.g. a camera uploading its firmware)."""
        return self.send(
            EXTEND_TIMEOUT_USEC=int(seconds * 1_000_000), **({"STATUS": status} if status else {})
        )

    def close(self) -> None:
        """Close the socket (sending again reopens it)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "Notifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def watchdog_interval(env: Optional[Mapping[str, str]] = None, pid: Optional[int] = None) -> Optional[float]:
    """WatchdogSec= in seconds from WATCHDOG_USEC, or None when no watchdog applies to us.

    Like sd_watchdog_enabled(): None when WATCHDOG_USEC is unset, or when WATCHDOG_PID names
    another process (the variables were inherited from a parent).
    """
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner:
        if not owner.isdigit():
            raise EdgecamError(f"WATCHDOG_PID={owner!r} is not a process id: unset it")
        if int(owner) != (os.getpid() if pid is None else pid):
            return None
    if not raw.isdigit() or int(raw) == 0:
        raise EdgecamError(
            f"WATCHDOG_USEC={raw!r} is not a positive number of microseconds: "
            "fix WatchdogSec= in the unit, or unset it"
        )
    return int(raw) / 1_000_000


class WatchdogPinger:
    """Turns inference-loop progress into rate-limited WATCHDOG=1 pings.

    The first progress() pings at once; later ones ping when at least `spacing` seconds have
    passed since the last ping. The default spacing is a quarter of the watchdog interval, so
    while frames arrive at least every interval/4 the gap between pings stays below half the
    interval (systemd's advice), without a datagram per frame.
    """

    def __init__(
        self,
        notifier: Optional[Notifier],
        interval: Optional[float],
        spacing: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.notifier = notifier
        self.interval = interval if notifier is not None else None
        if self.interval is not None and self.interval <= 0:
            raise ValueError("watchdog interval must be > 0")
        self.spacing = spacing if spacing is not None else (self.interval / 4 if self.interval else None)
        self._clock = clock
        self._last: Optional[float] = None
        self.pings = 0

    @classmethod
    def from_env(
        cls, notifier: Optional[Notifier], env: Optional[Mapping[str, str]] = None
    ) -> "WatchdogPinger":
        """A pinger for WATCHDOG_USEC in `env`; a disabled one when there is no watchdog."""
        return cls(notifier, watchdog_interval(env))

    @property
    def enabled(self) -> bool:
        """True when progress() can send pings (a notifier and a watchdog interval exist)."""
        return self.notifier is not None and self.interval is not None

    def progress(self) -> bool:
        """Record that the loop processed a frame; returns True when a ping was sent."""
        notifier, spacing = self.notifier, self.spacing
        if notifier is None or self.interval is None or spacing is None:  # not enabled
            return False
        now = self._clock()
        if self._last is not None and now - self._last < spacing:
            return False
        self._last = now
        sent = notifier.watchdog()
        self.pings += sent
        return sent


# While a camera is busy starting (the IMX500 uploading firmware), start-up is extended by
# this much at every STARTING_EVERY_S; systemd kills a start that stops asking.
STARTING_EXTEND_S = 30.0
STARTING_EVERY_S = 5.0
# How often `systemctl status` gets the run's figures.
STATUS_EVERY_S = 5.0


class ServiceStatus:
    """What a supervised run tells systemd, decided from what `poll()` sees each time round
    the supervising loop (edgecam.app.supervise):

    - WATCHDOG=1 (rate-limited by WatchdogPinger) while frames keep being processed, the
      source is reconnecting or the camera is busy starting; a stalled loop starves it;
    - EXTEND_TIMEOUT_USEC with the camera's STATUS every STARTING_EVERY_S while it is busy
      before READY; READY=1 once the first frame was processed;
    - STATUS= the run's summary line every STATUS_EVERY_S; STOPPING=1 on `stopping()`.

    Without NOTIFY_SOCKET it sends nothing.
    """

    def __init__(
        self,
        notifier: Optional[Notifier],
        pinger: WatchdogPinger,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.notifier, self.pinger, self._clock = notifier, pinger, clock
        self.ready = False
        self._seen = 0
        self._last_extend = -STARTING_EVERY_S
        self._last_status = clock()

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "ServiceStatus":
        """The status for NOTIFY_SOCKET and WATCHDOG_USEC in `env` (default os.environ)."""
        notifier = Notifier.from_env(env)
        return cls(notifier, WatchdogPinger.from_env(notifier, env))

    def poll(
        self, processed: int, reconnecting: bool, busy: Optional[str], source: str, summary: Callable[[], str]
    ) -> None:
        """One look at the run: `processed` frames so far, whether the source is reconnecting,
        what the camera is `busy` with (else None), the source's name, and its summary line."""
        if processed > self._seen or reconnecting or busy:
            self.pinger.progress()
        self._seen = processed
        notifier = self.notifier
        if notifier is None:
            return
        if busy and not self.ready and self._clock() - self._last_extend >= STARTING_EVERY_S:
            self._last_extend = self._clock()
            notifier.extend_timeout(STARTING_EXTEND_S, status=busy)
        if not self.ready and processed:
            self.ready = notifier.ready(status=f"running: {source}")
        now = self._clock()
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            notifier.status(summary())

    def stopping(self) -> None:
        """STOPPING=1: the run is being stopped."""
        if self.notifier is not None:
            self.notifier.stopping(status="stopping")

    def close(self) -> None:
        """Close the notification socket."""
        if self.notifier is not None:
            self.notifier.close()
