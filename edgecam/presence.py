"""Which accelerators this machine has, read from sysfs and /dev below a root (tests point
it at a prepared tree). Pure functions: no device is opened, nothing is imported."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

# Coral USB accelerator: 1a6e:089a before its firmware is loaded, 18d1:9302 after.
CORAL_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}
# Kernel modules of the Hailo PCIe driver (Hailo-8/8L, Hailo-10H).
HAILO_MODULES = ("hailo_pci", "hailo1x_pci")


@dataclass(frozen=True)
class CoralUsb:
    """A Coral USB accelerator found in sysfs, with its negotiated link speed in Mbit/s."""

    path: str
    vendor: str
    product: str
    speed_mbps: Optional[float]


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def find_coral_usb(root: Path = Path("/")) -> List[CoralUsb]:
    """Coral USB accelerators listed under /sys/bus/usb/devices."""
    found = []
    for dev in sorted((root / "sys/bus/usb/devices").glob("*")):
        vendor, product = _read(dev / "idVendor"), _read(dev / "idProduct")
        if vendor is not None and product is not None and (vendor, product) in CORAL_USB_IDS:
            speed = _read(dev / "speed")
            try:
                mbps = float(speed) if speed else None
            except ValueError:
                mbps = None
            found.append(CoralUsb(dev.name, vendor, product, mbps))
    return found


def coral_pcie(root: Path = Path("/")) -> bool:
    """True when the gasket/apex driver made /dev/apex_0 (M.2 or PCIe Coral)."""
    return (root / "dev/apex_0").exists()


def imx500_subdevs(root: Path = Path("/")) -> List[str]:
    """The v4l-subdev nodes driven by the imx500 module, found the way picamera2's IMX500
    class finds them (the device's driver/module link names imx500)."""
    found = []
    for dev in sorted(glob.glob(str(root / "sys/class/video4linux/v4l-subdev*"))):
        module = Path(dev) / "device/driver/module"
        if module.is_symlink() and "imx500" in os.readlink(module):
            found.append(Path(dev).name)
    return found


def hailo_devices(root: Path = Path("/")) -> List[str]:
    """/dev/hailo* nodes (made by the Hailo PCIe driver)."""
    return sorted(Path(p).name for p in glob.glob(str(root / "dev/hailo[0-9]*")))


def hailo_driver_version(root: Path = Path("/")) -> Optional[Tuple[str, str]]:
    """(module, version) of the loaded Hailo PCIe driver, from /sys/module/<module>/version."""
    for module in HAILO_MODULES:
        version = _read(root / "sys/module" / module / "version")
        if version:
            return module, version
    return None
