"""Pure parts of the MQTT side: identity, command parsing, spool."""

from __future__ import annotations

import time

import pytest

from edgecam.comms.dispatcher import CommandError, parse_enabled, parse_threshold
from edgecam.comms.identity import parse_host_port, read_password, resolve_device_id, topic_prefix
from edgecam.settings import LiveSettings
from edgecam.comms.spool import Spool
from edgecam.errors import EdgecamError


def test_device_id_from_hostname_is_sanitised_and_explicit_ids_are_checked():
    assert resolve_device_id(None, "Garage Cam.local") == "garage-cam"
    assert resolve_device_id(None, "###") == "edgecam"
    assert resolve_device_id("porch_1", "x") == "porch_1"
    for bad in ("a/b", "a+b", "a#", "a b", "a\tb", ""):
        with pytest.raises(EdgecamError, match="device id"):
            resolve_device_id(bad)
    assert topic_prefix(None, "cam1") == "edgecam/cam1"
    assert topic_prefix("site/cams/1/", "cam1") == "site/cams/1"
    with pytest.raises(EdgecamError):
        topic_prefix("a/#", "cam1")


def test_host_port_and_password_sources(tmp_path):
    assert parse_host_port("broker") == ("broker", 1883)
    assert parse_host_port("10.0.0.2:8883") == ("10.0.0.2", 8883)
    assert parse_host_port("[::1]:1884") == ("::1", 1884)
    for bad in ("host:0", "host:x", ":1883"):
        with pytest.raises(EdgecamError, match="--mqtt"):
            parse_host_port(bad)
    pw = tmp_path / "pw"
    pw.write_text("s3cret\nignored\n")
    assert read_password(str(pw), {"EDGECAM_MQTT_PASSWORD": "env"}) == "s3cret"
    assert read_password(None, {"EDGECAM_MQTT_PASSWORD": "env"}) == "env"
    assert read_password(None, {}) is None
    with pytest.raises(EdgecamError, match="password file"):
        read_password(str(tmp_path / "missing"), {})


def test_command_payload_parsing():
    assert parse_threshold(b"0.6") == 0.6 and parse_threshold(b'{"value": 0.25}') == 0.25
    for bad in (b"1.01", b"-0.1", b"x", b"true", b"", b"[1]"):
        with pytest.raises(CommandError):
            parse_threshold(bad)
    assert parse_enabled(b"ON") is True and parse_enabled(b"off") is False
    assert parse_enabled(b"true") is True and parse_enabled(b'{"value": false}') is False
    with pytest.raises(CommandError):
        parse_enabled(b"2")
    live = LiveSettings(0.5)
    assert live.update(threshold=0.7).threshold == 0.7 and live.enabled


def test_spool_is_fifo_bounded_and_persistent(tmp_path):
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, max_rows=3)
    rows = [spool.append("t", f"m{i}".encode()) for i in range(5)]
    assert spool.depth() == 3 and spool.dropped == 2
    assert [m.payload for m in spool.pending()] == [b"m2", b"m3", b"m4"]
    spool.delete(rows[3])
    spool.close()
    again = Spool(path, max_rows=3)
    assert [m.payload for m in again.pending()] == [b"m2", b"m4"]
    assert [m.payload for m in again.pending(after=rows[2])] == [b"m4"]
    again.close()


def test_spool_remembers_open_events_until_their_end_across_restarts(tmp_path):
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path)
    before = time.time()
    spool.append("ev", b"start a", opens="a")
    spool.append("ev", b"start b", opens="b")
    spool.append("ev", b"update a", opens="a")
    spool.append("ev", b"end b", closes="b")
    spool.touch_open(before + 100.0)
    spool.touch_open(before + 50.0)  # never back in time
    spool.close()
    again = Spool(path)
    (left,) = again.open_events()
    assert (left.id, left.topic, left.payload, left.seen) == ("a", "ev", b"update a", before + 100.0)
    assert again.depth() == 4, "the messages themselves are spooled as always"
    again.append("ev", b"end a", closes="a")
    assert again.open_events() == []
    again.close()
