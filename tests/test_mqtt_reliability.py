"""Availability and zero loss: last will on SIGKILL, broker crash, process crash, no broker."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

from edgecam.comms.mqtt import MqttCommunicator
from mqtt_fixtures import free_port
from mqtt_helpers import PERSON, TIE, build_mqtt, detect_config, frame_result, mqtt_config
from waiting import wait_until

PREFIX = "edgecam/cam1"

# A device process: builds the MQTT side, makes `n` events, reports, then idles until killed.
DEVICE_SCRIPT = r"""
import sys, time, dataclasses
from edgecam.comms import build_mqtt
from edgecam.config import DetectConfig, MqttConfig
from edgecam.datatypes import BBox, Detection, Frame, FrameResult
from edgecam.label_events import LabelEventOptions, LabelEvents
import numpy as np
host, port, state, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cfg = dataclasses.replace(MqttConfig(), host=host, port=port, device_id="cam1")
sink, comm, _, _ = build_mqtt(cfg, DetectConfig(), state, "ssd")
labels = LabelEvents(LabelEventOptions(("person",), start_frames=1, end_frames=1))
img = np.zeros((48, 64, 3), np.uint8)
person = Detection("person", 0, 0.9, BBox(0.1, 0.1, 0.5, 0.9))
for seq in range(n):
    dets = (person,) if seq % 2 == 0 else ()
    sink.handle(labels(FrameResult(Frame(seq, time.time(), time.monotonic(), img), dets, 5.0)))
deadline = time.monotonic() + 10
while n and sink.spool_depth() < n and time.monotonic() < deadline:
    time.sleep(0.01)
while not n and not comm.connected and time.monotonic() < deadline:
    time.sleep(0.01)
print("ready", sink.spool_depth(), comm.connected, flush=True)
time.sleep(600)
"""


def _device(host, port, state, n):
    proc = subprocess.Popen([sys.executable, "-c", DEVICE_SCRIPT, host, str(port), str(state),
                             str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready"), proc.stderr.read() if proc.poll() is not None else line
    return proc, line.split()


def _alternate(sink, seqs):
    """Feed frames: even seq has a person (start event), odd has none (end event)."""
    for seq in seqs:
        sink.handle(frame_result(seq, detections=(PERSON,) if seq % 2 == 0 else (TIE,)))


def _dedupe(payloads):
    seen, out = set(), []
    for p in payloads:
        e = json.loads(p)
        if (e["id"], e["type"]) not in seen:
            seen.add((e["id"], e["type"]))
            out.append(e)
    return out


def test_sigkilled_device_leaves_offline_via_last_will(mqtt_broker, tmp_path, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/availability")
    proc, fields = _device(mqtt_broker.host, mqtt_broker.port, tmp_path / "state", 0)
    try:
        assert fields[2] == "True"
        assert sub.wait_topic(f"{PREFIX}/availability") == [b"online"]
        proc.kill()
        proc.wait(5)
        assert sub.wait_for(lambda s: s.on(f"{PREFIX}/availability") == [b"online", b"offline"])
    finally:
        proc.kill()


def test_events_survive_a_broker_crash_in_order(mqtt_broker_restartable, tmp_path,
                                                subscriber_factory):
    broker = mqtt_broker_restartable
    sub1 = subscriber_factory(broker.host, broker.port, f"{PREFIX}/events")
    sink, comm, _d, _l = build_mqtt(
        mqtt_config(broker, event_start_frames=1, event_end_frames=1), detect_config(),
        tmp_path / "state", "ssd")
    try:
        assert sub1.wait_for(lambda s: comm.connected, 10)
        _alternate(sink, range(0, 10))
        sub1.wait_topic(f"{PREFIX}/events", count=10)
        # The subscriber can get an event before its PUBACK reaches us: kill only once all
        # ten were acknowledged, so the spool holds exactly what was sent while down.
        assert sub1.wait_for(lambda s: sink.spool_depth() == 0, 10)
        sub1.close()
        broker.kill()
        _alternate(sink, range(10, 20))  # broker down: these go to the spool only
        assert sink.spool_depth() == 10
        broker.start()
        sub2 = subscriber_factory(broker.host, broker.port, f"{PREFIX}/events")
        assert sub2.wait_for(lambda s: comm.connected, 30)
        _alternate(sink, range(20, 30))
        sub2.wait_for(lambda s: len(_dedupe(s.on(f"{PREFIX}/events"))) >= 20, 15)
        events = _dedupe(sub1.on(f"{PREFIX}/events") + sub2.on(f"{PREFIX}/events"))
        assert [e["seq"] for e in events] == list(range(30))
        assert [e["type"] for e in events] == ["start", "end"] * 15
        assert sub2.wait_for(lambda s: sink.spool_depth() == 0, 5)
    finally:
        sink.close()


def test_spooled_events_are_sent_by_the_next_process(mqtt_broker, tmp_path, subscriber_factory):
    state = tmp_path / "state"
    dead_port = free_port()  # nothing listens: every event stays in the spool
    proc, fields = _device("127.0.0.1", dead_port, state, 8)
    proc.kill()
    proc.wait(5)
    assert fields[1:] == ["8", "False"]

    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/events")
    sink, comm, _d, _l = build_mqtt(mqtt_config(mqtt_broker), detect_config(), state, "ssd")
    try:
        sub.wait_topic(f"{PREFIX}/events", count=8)
        events = _dedupe(sub.on(f"{PREFIX}/events"))
        assert [e["seq"] for e in events] == list(range(8))
        assert len({e["id"] for e in events}) == 4
        assert sub.wait_for(lambda s: sink.spool_depth() == 0, 5)
    finally:
        sink.close()


def test_unreachable_broker_never_blocks_and_logs_one_line(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="edgecam.mqtt")
    dead_port = free_port()
    failed = []  # one per connection attempt that found nobody listening
    on_connect_fail = MqttCommunicator._on_connect_fail
    monkeypatch.setattr(MqttCommunicator, "_on_connect_fail",
                        lambda self, *args: (failed.append(1), on_connect_fail(self, *args)))
    t0 = time.monotonic()
    sink, comm, _d, _l = build_mqtt(
        mqtt_config(type("B", (), {"host": "127.0.0.1", "port": dead_port}),
                    event_start_frames=1, event_end_frames=1),
        detect_config(), tmp_path / "state", "ssd")
    _alternate(sink, range(40))
    assert wait_until(lambda: len(failed) >= 2, 10), "a few reconnect attempts fail"
    _alternate(sink, range(40, 60))
    sink.close()
    elapsed = time.monotonic() - t0
    assert elapsed < 10, f"building, using and closing the sink took {elapsed:.1f} s"
    lines = [r.getMessage() for r in caplog.records if "cannot reach broker" in r.getMessage()]
    assert len(lines) == 1 and f"127.0.0.1:{dead_port}" in lines[0]
    from edgecam.comms.spool import SPOOL_FILE, Spool
    kept = Spool(tmp_path / "state" / SPOOL_FILE)
    assert kept.depth() == 60  # nothing lost: all spooled for the next run
    kept.close()
