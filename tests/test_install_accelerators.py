"""install.sh installs an accelerator's apt packages only when it is present or asked for."""

from __future__ import annotations

import os
import subprocess

from conftest import ROOT
from test_doctor_accelerators import imx500_tree

INSTALL = ROOT / "scripts" / "install.sh"


def _dry_run(*args, sysroot=None):
    env = dict(os.environ, EDGECAM_SYSROOT=str(sysroot) if sysroot else "/nonexistent")
    result = subprocess.run(["bash", str(INSTALL), "--dry-run", "--no-model", "--no-start", *args],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return [ln for ln in result.stdout.splitlines() if ln.startswith("+ ") and "apt-get install" in ln]


def _pci(root, name, vendor, device):
    dev = root / "sys/bus/pci/devices" / name
    dev.mkdir(parents=True)
    (dev / "vendor").write_text(vendor + "\n")
    (dev / "device").write_text(device + "\n")


def test_nothing_present_nothing_installed():
    installs = _dry_run()
    assert not any(p in " ".join(installs) for p in ("imx500-all", "hailo-all", "hailo-h10-all"))


def test_detected_hardware_gets_its_packages(tmp_path):
    imx500_tree(tmp_path)
    _pci(tmp_path, "0001:01:00.0", "0x1e60", "0x2864")
    _pci(tmp_path, "0000:00:00.0", "0x14e4", "0x2712")   # the Pi 5's own PCIe bridge
    installs = _dry_run(sysroot=tmp_path)
    assert installs[-1].endswith("apt-get install -y -qq hailo-all imx500-all"), installs


def test_asked_for_without_the_hardware():
    installs = _dry_run("--with-hailo-h10", "--with-imx500")
    assert installs[-1].endswith("apt-get install -y -qq hailo-h10-all imx500-all"), installs
