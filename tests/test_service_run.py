"""The real `edgecam run` process as systemd and MQTT subscribers see it.

sd_notify goes over a real unix datagram socket (NOTIFY_SOCKET); MQTT through a real mosquitto.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import COCO_LABELS, IMAGES, SSD_MODEL
from mqtt_fixtures import free_port
from waiting import wait_until

LOOPING_DOGS = ["--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
                "--source", str(IMAGES / "pets.jpg"), "--loop", "--realtime"]


class NotifySocket:
    """A unix datagram socket standing in for systemd: records (time, message) pairs."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def times_of(self, key):
        return [t for t, m in self.messages if key in m.splitlines()]

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def start(edgecam_cmd, env, *args, stdout=subprocess.PIPE):
    return subprocess.Popen([*edgecam_cmd, "run", *args], env=env, stdout=stdout,
                            stderr=subprocess.PIPE, text=True)


def test_ready_watchdog_and_sigterm(edgecam_cmd, cli_env, notify_socket, mqtt_broker, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "edgecam/cam1/#")
    env = dict(cli_env, NOTIFY_SOCKET=notify_socket.path, WATCHDOG_USEC="1000000")
    proc = start(edgecam_cmd, env, *LOOPING_DOGS, "--json", "--mqtt",
                 f"{mqtt_broker.host}:{mqtt_broker.port}", "--device-id", "cam1", "--watch", "dog")
    first_line = proc.stdout.readline()
    first_frame_at = time.monotonic()
    assert json.loads(first_line)["type"] == "frame"
    # A healthy service has its output read: a full pipe would stall the loop (next test).
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    assert sub.wait_for(lambda s: b"online" in s.on("edgecam/cam1/availability"), 10)
    assert sub.wait_topic("edgecam/cam1/dog/count", 10)
    assert wait_until(lambda: len(notify_socket.times_of("WATCHDOG=1")) >= 4, 10)
    ready = notify_socket.times_of("READY=1")
    assert len(ready) == 1
    # READY only after a frame went through (the frame line was printed by then or just after).
    assert ready[0] >= first_frame_at - 0.5
    pings = notify_socket.times_of("WATCHDOG=1")
    assert len(pings) >= 4
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 0.5 + 0.25, gaps  # under half the 1 s watchdog (+ the loop's poll)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    reader.join(5)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert time.monotonic() - sent < 5
    assert notify_socket.times_of("STOPPING=1")
    assert sub.wait_for(lambda s: s.on("edgecam/cam1/availability")[-1:] == [b"offline"], 5)
    events = [json.loads(p) for p in sub.on("edgecam/cam1/events")]
    assert [e["type"] for e in events][:1] == ["start"] and events[-1]["type"] == "end"
    for line in lines:
        json.loads(line)  # stdout stays pure JSON lines up to the end


def test_pings_stop_when_the_inference_loop_is_blocked(edgecam_cmd, cli_env, notify_socket, tmp_path):
    # Nobody reads our stdout: once the pipe is full the JSON sink blocks, and with a file
    # source nothing may be dropped, so the loop stalls for real. The pipe is shrunk to one
    # page (Linux's F_SETPIPE_SZ) so that it fills after a few dozen frames, not hundreds.
    env = dict(cli_env, NOTIFY_SOCKET=notify_socket.path, WATCHDOG_USEC="1000000")
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    try:
        proc = subprocess.Popen([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
                                 "--source", str(IMAGES / "kite_and_cold.jpg"), "--loop", "--json"],
                                env=env, stdout=write_end, stderr=subprocess.DEVNULL)
    finally:
        os.close(write_end)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pings = notify_socket.times_of("WATCHDOG=1")
            if pings and time.monotonic() - pings[-1] > 2.0:
                break
            time.sleep(0.2)
        pings = notify_socket.times_of("WATCHDOG=1")
        assert pings, "the loop should have pinged while it ran"
        assert time.monotonic() - pings[-1] > 2.0, "pings must stop when the loop is stuck"
        assert proc.poll() is None, "the process is alive, only its loop is stuck"
    finally:
        proc.kill()
        proc.wait(5)
        os.close(read_end)


def test_sigkill_leaves_offline_by_last_will(edgecam_cmd, cli_env, mqtt_broker, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "edgecam/cam1/availability")
    proc = start(edgecam_cmd, cli_env, *LOOPING_DOGS, "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "--device-id", "cam1", stdout=subprocess.DEVNULL)
    try:
        assert sub.wait_for(lambda s: s.on("edgecam/cam1/availability")[-1:] == [b"online"], 15)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        # mosquitto sends the will when the keepalive or the socket says the client is gone.
        assert sub.wait_for(lambda s: s.on("edgecam/cam1/availability")[-1:] == [b"offline"], 10)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_unreachable_broker_does_not_stop_detection(edgecam_cmd, cli_env):
    dead_port = free_port()
    out = subprocess.run([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
                          "--source", str(IMAGES), "--json", "--mqtt", f"127.0.0.1:{dead_port}",
                          "--device-id", "cam1"], env=cli_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [json.loads(ln)["type"] for ln in out.stdout.splitlines()].count("frame") == 5
    assert "Traceback" not in out.stderr
    assert f"127.0.0.1:{dead_port}" in out.stderr


def test_bad_device_id_is_a_clear_error(edgecam_cmd, cli_env):
    out = subprocess.run([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
                          "--source", str(IMAGES), "--mqtt", "127.0.0.1:1", "--device-id", "cam/1"],
                         env=cli_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cam/1" in lines[0]


def test_run_publishes_annotated_snapshots_and_answers_remote_probe(edgecam_cmd, cli_env, mqtt_broker,
                                                                    subscriber_factory):
    import cv2
    import numpy as np
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "edgecam/cam1/#")
    proc = start(edgecam_cmd, cli_env, *LOOPING_DOGS, "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "--device-id", "cam1", "--watch", "dog", stdout=subprocess.DEVNULL)
    try:
        snaps = sub.wait_topic("edgecam/cam1/snapshot", 15)
        assert snaps, "no snapshot published"
        shot = cv2.imdecode(np.frombuffer(snaps[-1], np.uint8), cv2.IMREAD_COLOR)
        original = cv2.imread(str(IMAGES / "pets.jpg"))
        assert shot.shape == original.shape
        # JPEG noise alone never moves a pixel this far; drawn boxes and labels do.
        changed = (cv2.absdiff(shot, original).max(axis=2) > 80).mean()
        assert changed > 0.01, "the snapshot must carry the boxes"
        sub.client.publish("edgecam/cam1/cmd/probe", json.dumps({"runs": 5, "warmup": 1}), qos=1)
        results = sub.wait_topic("edgecam/cam1/probe", 60)
        report = json.loads(results[-1])
        assert report["v"] == 1 and report["results"][0]["model"].endswith("ssd_mobilenet_v1_coco_quant.tflite")
        assert report["results"][0]["stages"]["invoke"]["p50_ms"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _spooled_starts(spool):
    """Ids of the `start` events waiting in a run's spool (read-only, while it runs)."""
    if not spool.exists():
        return []
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT payload FROM spool ORDER BY row").fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        db.close()
    return [e["id"] for e in map(json.loads, (bytes(r[0]) for r in rows)) if e["type"] == "start"]


def _open_a_second_after_start(spool, ids):
    """True once the run has recorded every one of `ids` as open at least 1 s after its start
    (the `seen` time its `end` will carry after a crash)."""
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT id, payload, seen FROM open_events").fetchall()
    finally:
        db.close()
    seen = {i: s - json.loads(bytes(p))["ts"] for i, p, s in rows}
    return all(seen.get(i, 0) >= 1.0 for i in ids)


@pytest.mark.parametrize("track", [False, True], ids=["debounced", "tracked"])
def test_starts_orphaned_by_a_crash_get_an_end_at_the_next_start(
        edgecam_cmd, cli_env, mqtt_broker_restartable, subscriber_factory, track):
    from mqtt_helpers import validate
    broker = mqtt_broker_restartable
    mqtt = ["--mqtt", f"{broker.host}:{broker.port}", "--device-id", "cam1", "--watch", "dog",
            *(["--track", "--no-require-motion"] if track else [])]  # a still photo's dogs
    spool = Path(cli_env["STATE_DIRECTORY"]) / "mqtt-spool.sqlite3"
    broker.kill()  # the events of the first run can only be spooled
    # Stats every 0.5 s: the open events' last known time is written with them.
    proc = start(edgecam_cmd, dict(cli_env, EDGECAM_MQTT__STATS_INTERVAL="0.5"), *LOOPING_DOGS,
                 *mqtt, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(_spooled_starts(spool)) < (2 if track else 1) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphans = _spooled_starts(spool)
        assert orphans, proc.stderr.read() if proc.poll() is not None else "no start spooled"
        # Until the run has recorded each open event as still open 1 s after its start.
        assert wait_until(lambda: _open_a_second_after_start(spool, orphans), 10)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    killed_at = time.time()

    broker.start()
    sub = subscriber_factory(broker.host, broker.port, "edgecam/cam1/events")
    # The next run sees no dog at all: every end it sends belongs to the first run.
    no_dogs = ["--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
               "--source", str(IMAGES / "grace_hopper.bmp"), "--loop", "--realtime", *mqtt]
    again = start(edgecam_cmd, cli_env, *no_dogs, stdout=subprocess.DEVNULL)
    try:
        def ended(s):
            return {json.loads(p)["id"] for p in s.on("edgecam/cam1/events")
                    if json.loads(p)["type"] == "end"} >= set(orphans)
        assert sub.wait_for(ended, 20), [json.loads(p) for p in sub.on("edgecam/cam1/events")]
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(10)
    events = [validate("event", p) for p in sub.on("edgecam/cam1/events")]
    starts = {e["id"]: e for e in events if e["type"] == "start"}
    ends = [e for e in events if e["type"] == "end"]
    assert set(starts) == set(orphans), "the spooled starts are delivered"
    assert sorted(e["id"] for e in ends) == sorted(orphans), "one end each, nothing else"
    for end in ends:
        start_ev = starts[end["id"]]
        assert end["reason"] == "restart"
        assert (end["label"], end["start_ts"]) == (start_ev["label"], start_ev["start_ts"])
        # The last known time: a frame seen in the 2.5 s the first run went on after the start.
        assert start_ev["ts"] + 1.0 <= end["end_ts"] <= killed_at
        assert end["duration_s"] == pytest.approx(end["end_ts"] - end["start_ts"], abs=0.002)
        assert events.index(end) > events.index(start_ev)
    assert again.returncode == 0, again.stderr.read()
    # Ended once: a run after a clean stop has nothing left to end.
    status = subscriber_factory(broker.host, broker.port, "edgecam/cam1/availability")
    assert status.wait_topic("edgecam/cam1/availability") == [b"offline"]
    third = start(edgecam_cmd, cli_env, *no_dogs, stdout=subprocess.DEVNULL)
    try:
        assert status.wait_for(lambda s: s.on("edgecam/cam1/availability")[-1:] == [b"online"], 20)
        time.sleep(1.5)
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(10)
    assert len(sub.on("edgecam/cam1/events")) == len(events)
