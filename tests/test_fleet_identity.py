"""A fleet on one broker: each Pi gets a unique, stable device id by default, and two
processes sharing one are reported (two real `edgecam run` processes, a real mosquitto)."""

from __future__ import annotations

import logging
import subprocess
import threading
import time

import pytest

from conftest import COCO_LABELS, IMAGES, SSD_MODEL
from edgecam.comms.identity import board_serial, resolve_device_id


def _tree(root, where, serial: bytes):
    path = root / where
    path.parent.mkdir(parents=True)
    path.write_bytes(serial)


def test_a_renamed_host_keeps_its_name(tmp_path):
    _tree(tmp_path, "proc/device-tree/serial-number", b"10000000abcdef12\x00")
    assert resolve_device_id(None, "porch", root=tmp_path) == "porch"


@pytest.mark.parametrize("where", ["proc/device-tree/serial-number",
                                   "sys/firmware/devicetree/base/serial-number"])
def test_the_stock_hostname_takes_the_board_serial(tmp_path, where):
    _tree(tmp_path, where, b"10000000ABCDEF12\x00")  # as the device tree gives it: NUL-ended
    assert resolve_device_id(None, "raspberrypi", root=tmp_path) == "rpi-10000000abcdef12"
    assert resolve_device_id(None, "RaspberryPi.local", root=tmp_path) == "rpi-10000000abcdef12"
    assert resolve_device_id("door", "raspberrypi", root=tmp_path) == "door"


def test_leading_zeros_of_a_serial_are_dropped(tmp_path):
    _tree(tmp_path, "proc/device-tree/serial-number", b"00000000deadbeef\x00")
    assert board_serial(tmp_path) == "deadbeef"


def test_no_serial_keeps_the_stock_name_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "edgecam.mqtt")
    assert resolve_device_id(None, "raspberrypi", root=tmp_path) == "raspberrypi"
    assert "device_id" in caplog.text


def _camera(edgecam_cmd, env, broker, device_id, tmp_path, name):
    proc = subprocess.Popen(
        [*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
         "--source", str(IMAGES / "pets.jpg"), "--loop", "--mqtt", f"{broker.host}:{broker.port}",
         "--device-id", device_id, "--state-dir", str(tmp_path / name), "--max-frames", "100000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, lines


def test_two_processes_with_one_device_id_are_reported(edgecam_cmd, cli_env, mqtt_broker,
                                                       subscriber_factory, tmp_path):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "edgecam/twin/availability")
    first, first_log = _camera(edgecam_cmd, cli_env, mqtt_broker, "twin", tmp_path, "a")
    second = None
    try:
        assert sub.wait_for(lambda s: s.on("edgecam/twin/availability")[-1:] == [b"online"], 60)
        second, second_log = _camera(edgecam_cmd, cli_env, mqtt_broker, "twin", tmp_path, "b")
        deadline = time.monotonic() + 60


        def errors():  # whichever is kicked off twice first reports it, then backs off
            return [line for line in first_log + second_log if "same client id" in line]
        while time.monotonic() < deadline and not errors():
            time.sleep(0.1)
        assert errors(), "".join(first_log + ["---\n"] + second_log)
        error = errors()[0]
        assert "ERROR" in error and "'edgecam-twin'" in error and "device_id" in error
        assert first.poll() is None and second.poll() is None  # both keep running
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.terminate()
                proc.wait(15)


def test_quick_broker_restarts_are_not_taken_for_a_second_process(mqtt_broker, caplog):
    """Two restarts within seconds drop two short connections in a row: no takeover error
    (it used to be reported, and the reconnect delay went to 60 s)."""
    from edgecam.comms.mqtt import MqttCommunicator

    caplog.set_level(logging.INFO, "edgecam.mqtt")
    comm = MqttCommunicator(mqtt_broker.host, mqtt_broker.port, client_id="edgecam-solo",
                            availability_topic="edgecam/solo/availability")
    ups = []
    comm.add_connection_listener(lambda up: ups.append(up))
    comm.start()
    try:
        for restarts in range(3):
            deadline = time.monotonic() + 15
            while ups.count(True) <= restarts and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ups.count(True) == restarts + 1, caplog.text
            if restarts < 2:
                mqtt_broker.kill()
                mqtt_broker.start()
        assert "same client id" not in caplog.text
    finally:
        comm.stop()
