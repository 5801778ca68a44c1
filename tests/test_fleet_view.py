"""`edgecam listen --all`: the fleet table from what real devices publish on a real broker,
redrawn in place on a terminal (a real pty) and as JSON lines with --json."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

from edgecam.cli.fleet import CLEAR, FleetTable
from mqtt_helpers import build_mqtt, detect_config, frame_result, mqtt_config


def test_rows_fold_availability_stats_and_events():
    table = FleetTable()
    assert table.update("edgecam/cam1/availability", b"online", now=1.0).online is True
    stats = {"v": 1, "fps": 2.5, "inference_ms": {"p50": 41.2, "p95": 50.0}, "cpu_temp_c": 61.4,
             "spool_depth": 3}
    row = table.update("edgecam/cam1/stats", json.dumps(stats).encode(), now=2.0)
    assert (row.fps, row.inference_p50_ms, row.temp_c, row.spool_depth) == (2.5, 41.2, 61.4, 3)
    event = {"type": "start", "label": "person", "id": "abc", "ts": 100.0}
    assert table.update("edgecam/cam1/events", json.dumps(event).encode()).last_event["label"] == "person"
    assert table.update("edgecam/cam1/events", b'{"type": "update", "label": "x"}') is None
    assert table.update("edgecam/cam1/detections", b"{}") is None  # not a column
    assert table.update("edgecam/cam1/stats", json.dumps(stats).encode()) is None  # unchanged
    assert table.update("edgecam/cam2/availability", b"offline").online is False
    text = table.render(now=130.0)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["device", "online", "fps"]
    assert lines[1].split()[:5] == ["cam1", "online", "2.5", "41.2", "ms"]
    assert "start person 30 s ago" in lines[1]
    assert lines[2].split()[:2] == ["cam2", "OFFLINE"]
    assert lines[-1] == "2 device(s), 1 online"


def _two_devices(broker, tmp_path):
    sinks = []
    for name in ("cam1", "cam2"):
        sink, *_ = build_mqtt(mqtt_config(broker, device_id=name, discovery=False),
                              detect_config(), tmp_path / name, "ssd")
        sinks.append(sink)
    for seq in range(4):
        for sink in sinks:
            sink.handle(frame_result(seq))
    return sinks


def test_listen_all_json_gives_a_row_per_device(mqtt_broker, edgecam_cmd, cli_env, tmp_path):
    sinks = _two_devices(mqtt_broker, tmp_path)
    try:
        proc = subprocess.Popen([*edgecam_cmd, "listen", "--mqtt",
                                 f"{mqtt_broker.host}:{mqtt_broker.port}", "--all", "--json",
                                 "--timeout", "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
        seq = 4
        while proc.poll() is None:  # frames keep coming while it listens, as from cameras
            for sink in sinks:
                sink.handle(frame_result(seq))
            seq += 1
            time.sleep(0.1)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        for sink in sinks:
            sink.close()
    assert proc.returncode == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    last = {r["device"]: r for r in rows}
    assert set(last) == {"cam1", "cam2"} and all(r["type"] == "device" for r in rows)
    assert all(r["online"] is True and r["fps"] is not None and r["spool_depth"] is not None
               for r in last.values())
    assert {r["device"] for r in rows if r["inference_p50_ms"] is not None} == {"cam1", "cam2"}


def test_listen_all_redraws_in_place_on_a_terminal(mqtt_broker, edgecam_cmd, cli_env, tmp_path):
    sinks = _two_devices(mqtt_broker, tmp_path)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*edgecam_cmd, "listen", "--mqtt",
                                 f"{mqtt_broker.host}:{mqtt_broker.port}", "--all", "--timeout", "4"],
                                stdin=slave, stdout=slave, stderr=subprocess.DEVNULL, env=cli_env)
        os.close(slave)
        screen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the pty closes when the process exits
                    break
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None:
                break
        proc.wait(10)
    finally:
        os.close(master)
        for sink in sinks:
            sink.close()
    text = screen.decode("utf-8", "replace")
    frames = text.split(CLEAR)
    assert len(frames) >= 3, text  # redrawn, in place, several times
    last = frames[-1].replace("\r", "").splitlines()
    assert [line.split()[0] for line in last[1:3]] == ["cam1", "cam2"]
    assert last[3] == "2 device(s), 2 online"
