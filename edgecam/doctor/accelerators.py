"""`edgecam doctor` rows for the accelerators: which are present, what they need, and which
`--detector` runs on each. Hardware is read below `root` (tests point it at a prepared tree);
what only a library can tell (the camera list, the Hailo architecture, HailoRT's version) is
asked through functions the caller may replace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, List, Optional

from ..checks import FAIL, OK, SKIP, WARN, Check
from ..backends import hailo as hailo_backend
from ..backends import imx500 as imx500_backend
from ..presence import coral_pcie, find_coral_usb, hailo_devices, hailo_driver_version, imx500_subdevs

# What is known to work for the Coral on current Raspberry Pi OS (docs/accelerators.md).
EDGETPU_NOTE = (
    "Coral's own pycoral/libedgetpu packages are unmaintained (no Python 3.11+ "
    "builds); edgecam loads libedgetpu.so.1 through ai-edge-litert's load_delegate, "
    "so a community libedgetpu build (as Frigate ships) is needed; untested here "
    "on a Coral"
)


def picamera_cameras() -> Optional[list]:
    """Picamera2.global_camera_info(), or None when picamera2 is not installed."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        return None
    try:
        return list(Picamera2.global_camera_info())
    except Exception:  # libcamera failing to enumerate is a finding, not a crash
        return []


def imx500_progress_fix() -> Optional[bool]:
    """Whether the installed picamera2's IMX500() goes on when the upload progress in debugfs
    is unreadable (None: no picamera2 IMX500 support). Told by the feature, not a version
    number: the releases with the fix (0.3.35 on) have `IMX500.FwProgressType`."""
    try:
        from picamera2.devices.imx500 import IMX500
    except ImportError:
        return None
    return hasattr(IMX500, "FwProgressType")


def hailo_arch() -> Optional[str]:
    """picamera2's hailo_architecture(), or None (no HailoRT, no device)."""
    try:
        from picamera2.devices import hailo_architecture
    except ImportError:
        return None
    try:
        return hailo_architecture()
    except Exception:
        return None


def hailort_version() -> Optional[str]:
    """The HailoRT library's version: hailo_platform's, else `hailortcli --version`'s."""
    try:
        import hailo_platform

        version = getattr(hailo_platform, "__version__", None)
        if version:
            return str(version)
    except ImportError:
        pass
    tool = shutil.which("hailortcli")
    if not tool:
        return None
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+\.\d+\.\d+)", out)
    return found.group(1) if found else None


def check_imx500_progress(root: Path, progress_fix: Callable[[], Optional[bool]]) -> List[Check]:
    """A row when this user cannot read the firmware upload progress in debugfs (root:sudo
    0750 on Raspberry Pi OS): a warning if picamera2 then refuses the camera."""
    debugfs = root / imx500_backend.DEBUGFS.lstrip("/")
    if os.access(debugfs, os.R_OK | os.X_OK):
        return []
    fixed = progress_fix()
    if fixed is None:
        return []
    user = imx500_backend.user_name()
    if fixed:
        return [
            Check(
                "imx500 progress",
                OK,
                f"upload progress not readable for user {user} "
                f"({imx500_backend.DEBUGFS}): picamera2 uploads "
                "without it, edgecam waits for the first outputs",
            )
        ]
    return [
        Check(
            "imx500 progress",
            WARN,
            f"user {user} cannot read {imx500_backend.DEBUGFS} and this picamera2 (before "
            f"{imx500_backend.PROGRESS_FIX}) then refuses the AI Camera",
            "sudo apt update && sudo apt install --only-upgrade python3-picamera2 "
            f"({imx500_backend.PROGRESS_FIX} or later); or run as a user in the sudo group",
        )
    ]


def check_imx500(
    wanted: bool,
    root: Path,
    cameras: Callable[[], Optional[list]],
    progress_fix: Callable[[], Optional[bool]] = imx500_progress_fix,
) -> List[Check]:
    """The AI Camera: its sensor in sysfs and in libcamera's list, imx500-all's networks, and
    whether picamera2 copes with this user's view of the upload progress."""
    subdevs = imx500_subdevs(root)
    listed = cameras()
    in_list = [c for c in (listed or []) if c.get("Model") == "imx500"]
    if not subdevs and not in_list:
        return [
            Check(
                "imx500",
                FAIL if wanted else SKIP,
                "no AI Camera (IMX500) found",
                "connect the AI Camera's ribbon cable, update the OS (`sudo apt full-upgrade`) and reboot"
                if wanted
                else "",
            )
        ]
    where = ", ".join(subdevs) or "libcamera"
    camera = (
        f", camera {in_list[0].get('Num', 0)}"
        if in_list
        else (" (picamera2 not installed)" if listed is None else " (not in libcamera's camera list)")
    )
    rows = [Check("imx500", OK, f"AI Camera on {where}{camera}: use --detector imx500")]
    networks = imx500_backend.list_networks(str(root / imx500_backend.MODELS_DIR.lstrip("/")))
    default = Path(imx500_backend.DEFAULT_NETWORK).name
    if not networks:
        rows.append(
            Check(
                "imx500 networks",
                FAIL if wanted else WARN,
                f"none in {imx500_backend.MODELS_DIR}",
                f"sudo apt install {imx500_backend.PACKAGE}, then reboot",
            )
        )
    else:
        rows.append(
            Check(
                "imx500 networks",
                OK if default in networks else WARN,
                f"{len(networks)} in {imx500_backend.MODELS_DIR}"
                + ("" if default in networks else f", not the default {default}"),
                "" if default in networks else f"sudo apt install {imx500_backend.PACKAGE}",
            )
        )
    return rows + check_imx500_progress(root, progress_fix)


def check_hailo(
    wanted: bool, root: Path, arch: Callable[[], Optional[str]], runtime_version: Callable[[], Optional[str]]
) -> List[Check]:
    """The AI Kit / AI HAT+: /dev/hailo0, its architecture, HailoRT against the driver."""
    nodes = hailo_devices(root)
    if not nodes:
        return [
            Check(
                "hailo",
                FAIL if wanted else SKIP,
                "no Hailo accelerator (/dev/hailo0)",
                f"seat the AI Kit / AI HAT+, `sudo apt install {hailo_backend.PACKAGES}`, reboot"
                if wanted
                else "",
            )
        ]
    architecture = arch()
    package = hailo_backend.package_for(architecture)
    rows = [
        Check(
            "hailo", OK, f"/dev/{nodes[0]} ({architecture or 'architecture unknown'}): use --detector hailo"
        )
    ]
    driver = hailo_driver_version(root)
    library = runtime_version()
    if driver is None or library is None:
        rows.append(
            Check(
                "hailort",
                WARN,
                f"HailoRT {library or '?'}, driver {driver[1] if driver else '?'}",
                f"sudo apt install {package}, then reboot",
            )
        )
    elif driver[1] != library:
        rows.append(
            Check(
                "hailort",
                FAIL,
                f"HailoRT {library} but driver {driver[0]} {driver[1]}: they must match",
                f"sudo apt install --reinstall {package} (library and driver together), then reboot",
            )
        )
    else:
        rows.append(Check("hailort", OK, f"HailoRT {library} = driver {driver[0]} {driver[1]}"))
    hef = Path(hailo_backend.default_hef(architecture))
    if (root / str(hef).lstrip("/")).exists():
        rows.append(Check("hailo model", OK, str(hef)))
    else:
        rows.append(
            Check("hailo model", FAIL if wanted else WARN, f"{hef} missing", f"sudo apt install {package}")
        )
    return rows


def check_coral(wanted: bool, root: Path) -> List[Check]:
    """The Coral, USB or PCIe, with what works on this OS (the library rows are check_edgetpu's)."""
    if not find_coral_usb(root) and not coral_pcie(root):
        return []
    return [
        Check("coral", OK, "Coral Edge TPU present: use --detector edgetpu"),
        Check(
            "coral support",
            WARN,
            EDGETPU_NOTE,
            "install a libedgetpu1 build for this OS, then check with "
            "`edgecam run --detector edgetpu --max-frames 1`",
        ),
    ]


def check_accelerators(
    backend: str,
    root: Path = Path("/"),
    cameras: Callable[[], Optional[list]] = picamera_cameras,
    arch: Callable[[], Optional[str]] = hailo_arch,
    runtime_version: Callable[[], Optional[str]] = hailort_version,
    progress_fix: Callable[[], Optional[bool]] = imx500_progress_fix,
) -> List[Check]:
    """Rows for every accelerator present; absent ones fail only when `backend` asks for them."""
    rows = check_imx500(backend == "imx500", root, cameras, progress_fix)
    rows += check_hailo(backend == "hailo", root, arch, runtime_version)
    rows += check_coral(backend == "edgetpu", root)
    return rows
