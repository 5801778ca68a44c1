"""`edgecam doctor`'s accelerator rows and `--detector auto` on prepared sysfs/dev trees."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from conftest import IMAGES
from edgecam.backends import resolve_backend
from edgecam.doctor.accelerators import check_accelerators
from edgecam.doctor import FAIL, OK, SKIP, WARN


def imx500_tree(root: Path, networks: bool = True) -> None:
    dev = root / "sys/devices/platform/axi/1000120000.pcie/1f00088000.i2c/i2c-10/10-001a"
    (dev / "driver").mkdir(parents=True)
    (dev / "driver/module").symlink_to("../../../../../../../module/imx500")
    subdev = root / "sys/class/video4linux/v4l-subdev2"
    subdev.mkdir(parents=True)
    (subdev / "device").symlink_to(dev)
    other = root / "sys/class/video4linux/v4l-subdev0/device/driver"
    other.mkdir(parents=True)
    (other / "module").symlink_to("../../../module/rp1_cfe")   # the CSI receiver, not a sensor
    if networks:
        models = root / "usr/share/imx500-models"
        models.mkdir(parents=True)
        (models / "imx500_network_ssd_mobilenetv2_fpnlite_320x320_pp.rpk").write_bytes(b"9464")


def hailo_tree(root: Path, driver: str = "4.20.0", module: str = "hailo_pci",
               hef: str = "yolov8s_h8l.hef") -> None:
    (root / "dev").mkdir(parents=True, exist_ok=True)
    (root / "dev/hailo0").write_text("")
    (root / "sys/module" / module).mkdir(parents=True)
    (root / "sys/module" / module / "version").write_text(driver + "\n")
    (root / "usr/share/hailo-models").mkdir(parents=True)
    (root / "usr/share/hailo-models" / hef).write_bytes(b"HEF")


def coral_tree(root: Path) -> None:
    dev = root / "sys/bus/usb/devices/2-1"
    dev.mkdir(parents=True)
    for name, value in (("idVendor", "18d1"), ("idProduct", "9302"), ("speed", "5000")):
        (dev / name).write_text(value + "\n")


def rows(backend, root, cameras=lambda: None, arch=lambda: None, version=lambda: None):
    return {r.name: r for r in check_accelerators(backend, root, cameras, arch, version)}


def test_nothing_present_fails_only_the_backend_asked_for(tmp_path):
    cpu = rows("cpu", tmp_path)
    assert {n: r.status for n, r in cpu.items()} == {"imx500": SKIP, "hailo": SKIP}
    assert rows("imx500", tmp_path)["imx500"].status == FAIL
    hailo = rows("hailo", tmp_path)["hailo"]
    assert hailo.status == FAIL and "hailo-all" in hailo.fix and "hailo-h10-all" in hailo.fix


def test_imx500_found_with_its_networks(tmp_path):
    imx500_tree(tmp_path)
    found = rows("cpu", tmp_path, cameras=lambda: [{"Model": "imx500", "Num": 0}])
    assert found["imx500"].status == OK
    assert "v4l-subdev2" in found["imx500"].detail and "--detector imx500" in found["imx500"].detail
    assert "camera 0" in found["imx500"].detail and "v4l-subdev0" not in found["imx500"].detail
    assert found["imx500 networks"].status == OK and "1 in /usr/share/imx500-models" in found["imx500 networks"].detail


def test_imx500_without_imx500_all(tmp_path):
    imx500_tree(tmp_path, networks=False)
    asked = rows("imx500", tmp_path)
    assert asked["imx500"].status == OK and "picamera2 not installed" in asked["imx500"].detail
    assert asked["imx500 networks"].status == FAIL and "imx500-all" in asked["imx500 networks"].fix
    assert rows("cpu", tmp_path)["imx500 networks"].status == WARN


def test_hailo_runtime_against_driver(tmp_path):
    hailo_tree(tmp_path, driver="4.20.0")
    same = rows("hailo", tmp_path, arch=lambda: "HAILO8L", version=lambda: "4.20.0")
    assert same["hailo"].status == OK and "HAILO8L" in same["hailo"].detail
    assert "--detector hailo" in same["hailo"].detail
    assert same["hailort"].status == OK and same["hailo model"].status == OK
    mismatch = rows("hailo", tmp_path, arch=lambda: "HAILO8L", version=lambda: "4.19.0")
    assert mismatch["hailort"].status == FAIL
    assert "4.19.0" in mismatch["hailort"].detail and "hailo_pci 4.20.0" in mismatch["hailort"].detail
    assert "--reinstall hailo-all" in mismatch["hailort"].fix
    unknown = rows("cpu", tmp_path, arch=lambda: None, version=lambda: None)
    assert unknown["hailort"].status == WARN


def test_hailo10h_needs_its_own_package_and_model(tmp_path):
    hailo_tree(tmp_path, driver="5.1.0", module="hailo1x_pci")
    found = rows("hailo", tmp_path, arch=lambda: "HAILO10H", version=lambda: "5.1.0")
    assert found["hailort"].status == OK and "hailo1x_pci" in found["hailort"].detail
    assert found["hailo model"].status == FAIL and "yolov8m_h10.hef" in found["hailo model"].detail
    assert "hailo-h10-all" in found["hailo model"].fix


def test_coral_row_says_what_works(tmp_path):
    coral_tree(tmp_path)
    found = rows("cpu", tmp_path)
    assert found["coral"].status == OK and "--detector edgetpu" in found["coral"].detail
    assert "community libedgetpu" in found["coral support"].detail


def test_auto_prefers_imx500_then_hailo_then_coral_then_cpu(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.backends")
    assert resolve_backend("auto", tmp_path) == "cpu"
    coral_tree(tmp_path)
    assert resolve_backend("auto", tmp_path) == "edgetpu"
    hailo_tree(tmp_path)
    assert resolve_backend("auto", tmp_path) == "hailo"
    imx500_tree(tmp_path)
    assert resolve_backend("auto", tmp_path) == "imx500"
    assert "detector auto: imx500 (accelerators found: imx500, hailo, edgetpu)" in caplog.text
    assert "detector auto: cpu (accelerators found: none)" in caplog.text
    assert resolve_backend("hailo", tmp_path) == "hailo", "an explicit choice is kept"


def test_doctor_command_on_a_prepared_tree(tmp_path, cli_env):
    root = tmp_path / "root"
    hailo_tree(root)
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\ndetector = "auto"\n[source]\nuri = "{IMAGES / "pets.jpg"}"\n')
    result = subprocess.run([sys.executable, "-m", "edgecam", "doctor", "--config", str(config),
                             "--root", str(root)], env=cli_env, capture_output=True, text=True,
                            timeout=120)
    statuses = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition("  ")
        for name in ("hailo model", "hailort", "hailo", "model"):
            if status in ("OK", "WARN", "FAIL", "SKIP") and rest.strip().startswith(name + " "):
                statuses.setdefault(name, status)
                break
    assert statuses["hailo"] == "OK" and statuses["hailo model"] == "OK", result.stdout
    assert statuses["model"] == "SKIP", "auto chose hailo: the .tflite check does not apply"
    # HailoRT is not installed on this machine: the version row says what to install.
    assert statuses["hailort"] == "WARN" and "sudo apt install hailo-all" in result.stdout
    assert "Traceback" not in result.stderr
