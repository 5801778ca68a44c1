"""`edgecam doctor` against real pieces: the shared model, a real mosquitto, a sysfs-like tree."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from broken_picamera2 import broken_picamera2_env
from conftest import COCO_LABELS, EDGETPU_MODEL, IMAGES, MODELS, SSD_MODEL
from edgecam import config as cfg
from edgecam.doctor import (FAIL, OK, SKIP, WARN, check_edgetpu, check_model, check_mqtt,
                            check_thermal, throttle_descriptions, find_coral_usb, format_table)


def _config_file(tmp_path: Path, **sections) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _doctor(edgecam_cmd, env, config_path):
    return subprocess.run([*edgecam_cmd, "doctor", "--config", str(config_path)], env=env,
                          capture_output=True, text=True, timeout=120)


def _rows(output: str) -> dict:
    rows = {}
    for line in output.splitlines():
        parts = line.split(None, 1)
        if parts and parts[0] in ("OK", "WARN", "FAIL", "SKIP"):
            rest = parts[1]
            # Check names are at most two words ("tflite runtime", "coral usb").
            for name in ("tflite runtime", "edgetpu library", "coral device", "coral usb",
                         "coral pcie", "mqtt broker", "mqtt login", "disk space",
                         "cpu temperature", "throttling", "picamera2", "camera", "model",
                         "labels", "config"):
                if rest.startswith(name + " "):
                    rows[name] = parts[0]
                    break
    return rows


def test_good_config_passes(edgecam_cmd, cli_env, tmp_path, mqtt_broker):
    path = _config_file(tmp_path,
                        model={"path": str(SSD_MODEL), "labels": str(COCO_LABELS)},
                        source={"uri": str(IMAGES / "grace_hopper.bmp")},
                        mqtt={"host": mqtt_broker.host, "port": mqtt_broker.port},
                        service={"state_dir": str(tmp_path / "state")})
    result = _doctor(edgecam_cmd, cli_env, path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(result.stdout)
    for name in ("config", "tflite runtime", "model", "labels", "mqtt broker", "mqtt login"):
        assert rows[name] == "OK", result.stdout
    from edgecam.labels import load_labels
    assert "input 300x300, delegate cpu" in result.stdout
    assert f"({len(load_labels(str(COCO_LABELS)))} labels)" in result.stdout
    assert rows["camera"] == "SKIP"
    assert "0 failed" in result.stdout


def test_missing_model_fails_and_names_the_fix(edgecam_cmd, cli_env, tmp_path):
    path = _config_file(tmp_path, model={"path": str(tmp_path / "missing.tflite")},
                        source={"uri": str(IMAGES / "grace_hopper.bmp")})
    result = _doctor(edgecam_cmd, cli_env, path)
    assert result.returncode == 1
    assert _rows(result.stdout)["model"] == "FAIL"
    assert "fix: run `edgecam models fetch ssd_mobilenet_v1_coco`" in result.stdout
    assert "Traceback" not in result.stderr


def test_default_model_not_installed_then_fetched(edgecam_cmd, cli_env, tmp_path):
    path = _config_file(tmp_path, source={"uri": str(IMAGES / "grace_hopper.bmp")})
    result = _doctor(edgecam_cmd, cli_env, path)
    assert result.returncode == 1 and "edgecam models fetch ssd_mobilenet_v1_coco" in result.stdout
    fetched = subprocess.run([*edgecam_cmd, "models", "fetch", "ssd_mobilenet_v1_coco", "--from", str(MODELS)],
                             env=cli_env, capture_output=True, text=True, timeout=60)
    assert fetched.returncode == 0, fetched.stderr
    result = _doctor(edgecam_cmd, cli_env, path)
    assert result.returncode == 0, result.stdout
    assert _rows(result.stdout)["model"] == "OK" and _rows(result.stdout)["labels"] == "OK"


def test_broken_config_is_a_failed_row(edgecam_cmd, cli_env, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[detect]\nthreshold = 7\n")
    result = _doctor(edgecam_cmd, cli_env, path)
    assert result.returncode == 1 and _rows(result.stdout)["config"] == "FAIL"
    assert "threshold" in result.stdout


def test_a_broken_picamera2_is_a_failed_row_with_its_error(edgecam_cmd, cli_env, tmp_path):
    path = _config_file(tmp_path, model={"path": str(SSD_MODEL), "labels": str(COCO_LABELS)},
                        source={"uri": "picamera"})
    result = _doctor(edgecam_cmd, broken_picamera2_env(tmp_path, cli_env), path)
    assert result.returncode == 1
    assert _rows(result.stdout)["picamera2"] == "FAIL", result.stdout
    row = next(line for line in result.stdout.splitlines() if "picamera2 " in line)
    assert "numpy.core.multiarray failed to import" in row
    assert "numpy<2" in result.stdout
    assert "Traceback" not in result.stderr


def test_edgetpu_model_on_cpu_fails_clearly(tmp_path):
    config = cfg.from_mapping({"model": {"path": str(EDGETPU_MODEL)}})
    rows = {r.name: r for r in check_model(config, env={})}
    assert rows["model"].status == FAIL and "Edge TPU" in rows["model"].detail
    assert rows["labels"].status == WARN


def test_a_label_file_run_refuses_is_a_failed_row_too(tmp_path):
    three = tmp_path / "three.txt"
    three.write_text("person\nbicycle\ncar\n")
    config = cfg.from_mapping({"model": {"path": str(SSD_MODEL), "labels": str(three)}})
    rows = {r.name: r for r in check_model(config, env={})}
    assert rows["model"].status == OK
    assert rows["labels"].status == FAIL, rows["labels"]
    assert f"label file {three} has 3 labels (ids up to 2) but the model has 90 classes" in rows["labels"].detail


def test_mqtt_unreachable_and_bad_login(mqtt_acl_broker, tmp_path):
    from mqtt_fixtures import free_port
    down = cfg.from_mapping({"mqtt": {"host": "127.0.0.1", "port": free_port()}})
    rows = check_mqtt(down, env={}, timeout=2)
    assert [r.status for r in rows] == [FAIL] and "cannot reach" in rows[0].detail

    base = {"host": mqtt_acl_broker.host, "port": mqtt_acl_broker.port, "user": "cam1"}
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    bad = cfg.from_mapping({"mqtt": {**base, "password_file": str(wrong)}})
    rows = {r.name: r for r in check_mqtt(bad, env={}, timeout=5)}
    assert rows["mqtt broker"].status == OK and rows["mqtt login"].status == FAIL
    assert "password" in rows["mqtt login"].fix

    good = cfg.from_mapping({"mqtt": {**base, "password_file": str(mqtt_acl_broker.password_file)}})
    rows = {r.name: r for r in check_mqtt(good, env={}, timeout=5)}
    assert rows["mqtt login"].status == OK and "as cam1" in rows["mqtt login"].detail


def _usb_device(root: Path, name: str, vendor: str, product: str, speed: str) -> None:
    dev = root / "sys/bus/usb/devices" / name
    dev.mkdir(parents=True)
    (dev / "idVendor").write_text(vendor + "\n")
    (dev / "idProduct").write_text(product + "\n")
    (dev / "speed").write_text(speed + "\n")


def test_coral_usb_found_with_link_speed(tmp_path):
    _usb_device(tmp_path, "1-1", "18d1", "9302", "480")
    _usb_device(tmp_path, "2-1", "1a6e", "089a", "5000")
    _usb_device(tmp_path, "2-2", "18d1", "4ee7", "480")   # a Google phone, not a Coral
    found = find_coral_usb(tmp_path)
    assert [(d.path, d.speed_mbps) for d in found] == [("1-1", 480.0), ("2-1", 5000.0)]

    config = cfg.from_mapping({"model": {"delegate": "edgetpu"}})

    def no_library(name):
        raise OSError(f"{name}: cannot open shared object file")

    rows = check_edgetpu(config, tmp_path, load_library=no_library)
    statuses = [(r.name, r.status) for r in rows]
    assert statuses == [("edgetpu library", FAIL), ("coral usb", WARN), ("coral usb", OK)]
    assert "USB 3" in rows[1].fix and "libedgetpu1-std" in rows[0].fix


def test_edgetpu_absent_matters_only_when_asked_for(tmp_path):
    def no_library(name):
        raise OSError(name)

    cpu = check_edgetpu(cfg.Config(), tmp_path, load_library=no_library)
    assert {r.status for r in cpu} == {SKIP}
    tpu = check_edgetpu(cfg.from_mapping({"model": {"delegate": "edgetpu"}}), tmp_path, load_library=no_library)
    assert [r.status for r in tpu] == [FAIL, FAIL] and "delegate" in tpu[1].fix


def test_thermal_and_throttling(tmp_path):
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("81234\n")
    tool = tmp_path / "vcgencmd"
    tool.write_text("#!/bin/sh\necho throttled=0x50005\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    rows = check_thermal(tmp_path, vcgencmd=str(tool))
    assert rows[0].status == WARN and "81.2" in rows[0].detail
    assert rows[1].status == WARN and "under voltage" in rows[1].detail and "power supply" in rows[1].fix
    assert throttle_descriptions(0) == []
    (zone / "temp").write_text("48000\n")
    tool.write_text("#!/bin/sh\necho throttled=0x0\n")
    assert [r.status for r in check_thermal(tmp_path, vcgencmd=str(tool))] == [OK, OK]


def test_table_shows_fixes_for_failures_only():
    from edgecam.doctor import Check
    text = format_table([Check("a", OK, "fine", "unused fix"), Check("bb", FAIL, "broken", "do this")])
    assert "unused fix" not in text and "fix: do this" in text and text.endswith("1 failed, 0 warning(s)")
