"""sd_notify client over a real unix datagram socket, as systemd provides it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid

import pytest

from edgecam.errors import EdgecamError
from edgecam.notify import (STARTING_EVERY_S, STATUS_EVERY_S, Notifier, ServiceStatus,
                            WatchdogPinger, watchdog_interval)


class Clock:
    """A hand-advanced monotonic clock, so rate limits are tested without sleeping."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def listener():
    """(socket, NOTIFY_SOCKET value) for a bound abstract datagram socket."""
    name = f"edgecam-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    yield sock, "@" + name
    sock.close()


def _recv(sock, timeout=2.0):
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def _nothing_pending(sock):
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def test_disabled_without_notify_socket():
    assert Notifier.from_env({}) is None
    assert Notifier.from_env({"NOTIFY_SOCKET": ""}) is None
    pinger = WatchdogPinger.from_env(None, {"WATCHDOG_USEC": "30000000"})
    assert not pinger.enabled and pinger.progress() is False


def test_bad_notify_socket_is_a_clear_error():
    with pytest.raises(EdgecamError, match="NOTIFY_SOCKET"):
        Notifier.from_env({"NOTIFY_SOCKET": "relative/path"})


def test_messages_over_an_abstract_socket(listener):
    sock, address = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.ready(status="model loaded, first frame captured")
    assert _recv(sock) == "READY=1\nSTATUS=model loaded, first frame captured"
    assert notifier.status("12.5 fps, 3 detections")
    assert _recv(sock) == "STATUS=12.5 fps, 3 detections"
    assert notifier.watchdog()
    assert _recv(sock) == "WATCHDOG=1"
    assert notifier.stopping()
    assert _recv(sock) == "STOPPING=1"
    assert notifier.extend_timeout(2.5)
    assert _recv(sock) == "EXTEND_TIMEOUT_USEC=2500000"
    notifier.close()


def test_messages_over_a_path_socket():
    # sun_path holds ~108 bytes: keep the directory short rather than using tmp_path.
    with tempfile.TemporaryDirectory(prefix="ecn") as tmp:
        path = os.path.join(tmp, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            with Notifier.from_env({"NOTIFY_SOCKET": path}) as notifier:
                assert notifier.send(STATUS="multi\nline", MAINPID=os.getpid())
                # A newline in a value must not become a second field.
                assert _recv(sock) == f"STATUS=multi line\nMAINPID={os.getpid()}"


def test_a_full_queue_drops_messages_instead_of_blocking(listener):
    sock, address = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    results = [notifier.watchdog() for _ in range(200)]
    assert results[0] is True and results[-1] is False
    assert _recv(sock) == "WATCHDOG=1"


def test_send_to_a_vanished_socket_does_not_raise():
    notifier = Notifier("\0edgecam-test-nobody-listens-" + uuid.uuid4().hex)
    assert notifier.ready() is False


def test_another_process_reaches_the_socket(listener, tmp_path):
    """The environment systemd gives a child process is enough to notify."""
    sock, address = listener
    code = ("from edgecam.notify import Notifier; n = Notifier.from_env(); "
            "n.ready(status='child up'); n.stopping()")
    env = dict(os.environ, NOTIFY_SOCKET=address)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    assert _recv(sock) == "READY=1\nSTATUS=child up"
    assert _recv(sock) == "STOPPING=1"


def test_watchdog_interval_from_env():
    pid = os.getpid()
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(pid)}) == 0.5
    # Inherited from a parent: the watchdog is not ours.
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(pid + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "77"}, pid=77) == 0.5
    with pytest.raises(EdgecamError, match="WATCHDOG_USEC"):
        watchdog_interval({"WATCHDOG_USEC": "soon"})


def test_pinger_rate_limits_and_keeps_gaps_below_half_the_interval(listener):
    sock, address = listener
    clock = Clock()
    pinger = WatchdogPinger(Notifier.from_env({"NOTIFY_SOCKET": address}), interval=8.0, clock=clock)
    sent_at = []
    # 20 fps for 40 simulated seconds: 800 frames must not become 800 datagrams.
    for _ in range(800):
        if pinger.progress():
            sent_at.append(clock.now)
            assert _recv(sock) == "WATCHDOG=1"
        assert _nothing_pending(sock)
        clock.now += 0.05
    assert pinger.pings == len(sent_at)
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert 10 <= len(sent_at) <= 25, sent_at
    assert all(2.0 - 1e-9 <= g < 4.0 for g in gaps), gaps


def test_no_pings_without_progress(listener):
    sock, address = listener
    clock = Clock()
    pinger = WatchdogPinger(Notifier.from_env({"NOTIFY_SOCKET": address}), interval=2.0, clock=clock)
    assert pinger.progress() is True
    assert _recv(sock) == "WATCHDOG=1"
    # The loop is blocked: time passes well beyond the watchdog interval, nothing calls progress().
    clock.now += 60.0
    with pytest.raises(socket.timeout):
        _recv(sock, timeout=0.3)
    # It recovers: the next frame pings at once because the spacing has long passed.
    assert pinger.progress() is True
    assert _recv(sock) == "WATCHDOG=1"


def test_pinger_from_env_uses_watchdog_usec(listener):
    _sock, address = listener
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "20000000"}
    pinger = WatchdogPinger.from_env(Notifier.from_env(env), env)
    assert pinger.enabled and pinger.interval == 20.0 and pinger.spacing == 5.0


def test_service_status_says_busy_then_ready_then_how_the_run_goes(listener):
    # What a supervised run tells systemd, poll by poll: a camera busy starting extends the
    # start-up (with its status) at most every STARTING_EVERY_S and feeds the watchdog; the
    # first processed frame sends READY; the summary goes out every STATUS_EVERY_S.
    sock, address = listener
    clock = Clock()
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    service = ServiceStatus(notifier, WatchdogPinger(notifier, interval=12.0, clock=clock), clock)
    summary = lambda: "processed 1 frame(s)"  # noqa: E731
    service.poll(0, False, "uploading firmware: 10%", "picamera", summary)
    assert _recv(sock) == "WATCHDOG=1"
    assert _recv(sock) == "EXTEND_TIMEOUT_USEC=30000000\nSTATUS=uploading firmware: 10%"
    clock.now += STARTING_EVERY_S / 2
    service.poll(0, False, "uploading firmware: 20%", "picamera", summary)
    assert _nothing_pending(sock), "extended at most every STARTING_EVERY_S, pinged at most every 3 s"
    clock.now += STARTING_EVERY_S / 2
    service.poll(1, False, None, "picamera", summary)
    assert _recv(sock) == "WATCHDOG=1"
    assert _recv(sock) == "READY=1\nSTATUS=running: picamera"
    assert _recv(sock) == "STATUS=processed 1 frame(s)"  # STATUS_EVERY_S since it was made
    clock.now += STATUS_EVERY_S
    service.poll(1, False, "uploading again", "picamera", summary)
    assert _recv(sock) == "WATCHDOG=1", "fed while busy after READY"
    assert _recv(sock) == "STATUS=processed 1 frame(s)", "never extended after READY"
    assert _nothing_pending(sock)
    service.stopping()
    assert _recv(sock) == "STOPPING=1\nSTATUS=stopping"
    service.close()
    silent = ServiceStatus.from_env({})
    silent.poll(5, True, "busy", "camera", summary)  # no socket: nothing to send, no error
    silent.stopping()
    silent.close()

