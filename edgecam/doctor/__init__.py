"""`edgecam doctor`: a table of what works on this device and what to do about what doesn't.

Each check is a small function returning Check rows (ok / warn / fail / skip, a detail, a
fix). Checks never raise: a broken piece becomes a `fail` row, and the command
(edgecam.cli.doctor) exits 1 when any row failed. Paths under /sys, /dev and /proc are read
below `root`, so the probes can be pointed at a prepared tree.
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from .. import config as cfg
from ..presence import coral_pcie, find_coral_usb
from ..checks import FAIL, OK, SKIP, WARN, Check
from ..errors import EdgecamError
from ..stats import decode_throttled, read_throttled, soc_temperature

DISK_WARN_BYTES = 500 * 1024 * 1024
DISK_FAIL_BYTES = 50 * 1024 * 1024
TEMP_WARN_C = 75.0
MQTT_TIMEOUT = 5.0


# --- probes (pure functions of the filesystem under `root`) --------------------------------


def video_devices(root: Path = Path("/")) -> List[str]:
    """/dev/video* nodes, sorted by number."""
    nodes = glob.glob(str(root / "dev" / "video*"))
    return sorted(nodes, key=lambda p: (len(p), p))


def throttle_descriptions(value: int) -> List[str]:
    """The names of the flags set in a `vcgencmd get_throttled` bit field (see edgecam.stats)."""
    return [name.replace("_", " ") for name, on in decode_throttled(value).items() if on]


# --- checks --------------------------------------------------------------------------------


def check_runtime() -> List[Check]:
    """The TFLite runtime edgecam would use, and its version."""
    from ..runtime import find_runtime

    try:
        runtime = find_runtime()
    except EdgecamError as exc:
        return [Check("tflite runtime", FAIL, "none installed", str(exc).split(": ", 1)[-1])]
    return [Check("tflite runtime", OK, runtime.describe())]


def _check_picamera2(uri: str) -> Check:
    """Whether picamera2 imports; a broken install shows its real import error and fix."""
    from ..sources import Picamera2Unavailable, import_picamera2

    wanted = uri in ("auto", "picamera")
    try:
        import_picamera2()
    except Picamera2Unavailable as exc:
        if exc.installed:
            return Check("picamera2", FAIL if wanted else WARN, exc.reason, exc.fix)
        return Check(
            "picamera2", WARN if wanted else SKIP, "not installed", f"for a Pi camera module: {exc.fix}"
        )
    return Check("picamera2", OK, "importable")


def check_cameras(config: cfg.Config, root: Path = Path("/")) -> List[Check]:
    """picamera2 importable, /dev/video* present; failures only matter for camera sources."""
    from ..sources import names_local_camera

    uri = config.source.uri
    needed = names_local_camera(uri)
    picamera2 = _check_picamera2(uri)
    rows = [picamera2]
    has_picamera2 = picamera2.status == OK
    nodes = video_devices(root)
    if uri.startswith("/dev/video") and str(root / uri.lstrip("/")) not in nodes:
        rows.append(
            Check(
                "camera",
                FAIL,
                f"{uri} does not exist (have: {', '.join(nodes) or 'none'})",
                "check the cable/USB port, `v4l2-ctl --list-devices`, or fix [source] uri",
            )
        )
    elif nodes:
        rows.append(Check("camera", OK, f"{len(nodes)} video node(s): {', '.join(nodes[:6])}"))
    elif needed and picamera2.status == FAIL:
        rows.append(Check("camera", SKIP, "not known until picamera2 imports (see above)"))
    elif needed and not has_picamera2:
        rows.append(
            Check(
                "camera",
                FAIL,
                "no /dev/video* device and no picamera2",
                "connect a camera (ribbon cable firmly seated, or USB), then reboot; "
                "or set [source] uri to a file or rtsp:// stream",
            )
        )
    elif needed:
        rows.append(Check("camera", WARN, "no /dev/video* device", "connect a camera module or USB camera"))
    else:
        rows.append(Check("camera", SKIP, f"source is {uri}, no camera needed"))
    return rows


def check_edgetpu(
    config: cfg.Config, root: Path = Path("/"), load_library: Callable[[str], object] = ctypes.CDLL
) -> List[Check]:
    """libedgetpu, a USB Coral (and its link speed) or a PCIe one; fail only when asked for."""
    from ..runtime import EDGETPU_LIBRARY

    wanted = config.model.delegate == "edgetpu"
    absent = FAIL if wanted else SKIP
    rows = []
    try:
        load_library(EDGETPU_LIBRARY)
        rows.append(Check("edgetpu library", OK, f"{EDGETPU_LIBRARY} loads"))
    except OSError:
        rows.append(
            Check(
                "edgetpu library",
                absent,
                f"{EDGETPU_LIBRARY} not found",
                "add Coral's apt repository and `sudo apt install libedgetpu1-std`" if wanted else "",
            )
        )
    usb = find_coral_usb(root)
    pcie = coral_pcie(root)
    for dev in usb:
        firmware = "firmware not loaded yet" if dev.vendor == "1a6e" else "firmware loaded"
        if dev.speed_mbps is not None and dev.speed_mbps < 5000:
            rows.append(
                Check(
                    "coral usb",
                    WARN,
                    f"{dev.path} at {dev.speed_mbps:g} Mbit/s ({firmware})",
                    "plug it into a USB 3 (blue) port with a USB 3 cable: USB 2 is several times slower",
                )
            )
        else:
            speed = f"{dev.speed_mbps:g} Mbit/s" if dev.speed_mbps else "unknown speed"
            rows.append(Check("coral usb", OK, f"{dev.path} at {speed} ({firmware})"))
    if pcie:
        rows.append(Check("coral pcie", OK, "/dev/apex_0 present"))
    if not usb and not pcie:
        rows.append(
            Check(
                "coral device",
                absent,
                "no USB or PCIe Coral found",
                'plug in the Coral (PCIe: install gasket-dkms and reboot), or set [model] delegate = "cpu"'
                if wanted
                else "",
            )
        )
    return rows


def check_model(config: cfg.Config, env: Optional[Mapping[str, str]] = None) -> List[Check]:
    """The configured (else default) model loads with the configured delegate; its labels parse."""
    from ..labels import check_labels_fit, load_labels
    from ..modelinfo import model_info
    from ..models import resolve_model
    from ..runtime import input_details, load_interpreter

    try:
        model, labels = resolve_model(config.model, env)
    except EdgecamError as exc:  # only the default model can be missing here
        return [Check("model", FAIL, "default model not installed", str(exc).split(": ", 1)[-1])]
    delegate = config.model.delegate
    rows = []
    num_classes = None
    try:
        interpreter = load_interpreter(
            model, threads=config.model.threads, delegate=None if delegate == "cpu" else delegate
        )
        ssd = model_info(model).ssd
        num_classes = ssd.num_classes if ssd is not None else None
        shape = input_details(interpreter)["shape"]
        size = "x".join(str(int(v)) for v in shape[1:3]) if len(shape) >= 3 else str(list(shape))
        # load_interpreter raises rather than fall back, so this is the delegate in use.
        rows.append(Check("model", OK, f"{model} (input {size}, delegate {delegate})"))
    except EdgecamError as exc:
        fix = (
            "run `edgecam models fetch ssd_mobilenet_v1_coco`, or fix [model] path"
            if not os.path.exists(model)
            else "use a .tflite model that matches [model] delegate"
        )
        rows.append(Check("model", FAIL, str(exc), fix))
    if labels:
        try:
            names = load_labels(labels)
            if num_classes:  # the rule `edgecam run` refuses a label file by
                check_labels_fit(names, num_classes, labels)
            rows.append(Check("labels", OK, f"{labels} ({len(names)} labels)"))
        except EdgecamError as exc:
            rows.append(Check("labels", FAIL, str(exc), "fix [model] labels, or refetch the model"))
    else:
        rows.append(Check("labels", WARN, "no label file: classes show as class_<id>", "set [model] labels"))
    return rows


def _mqtt_login(m: cfg.MqttConfig, login, timeout: float) -> Tuple[bool, str]:
    """(accepted, reason) of one MQTT CONNECT to the configured broker as `login` (a BrokerLogin)."""
    from ..comms.mqtt import paho_client

    client = paho_client(login)
    done = threading.Event()
    result: List[str] = []

    def on_connect(_c, _u, _flags, reason_code, _props):
        result.append(str(reason_code) if reason_code.is_failure else "")
        done.set()

    client.on_connect = on_connect
    try:
        assert m.host  # check_mqtt stops before without a host
        client.connect(m.host, m.port, keepalive=max(5, int(timeout) + 5))
        client.loop_start()
        if not done.wait(timeout):
            return False, "no CONNACK within %gs" % timeout
        return result[0] == "", result[0]
    finally:
        client.loop_stop()
        client.disconnect()


def check_mqtt(
    config: cfg.Config, env: Optional[Mapping[str, str]] = None, timeout: float = MQTT_TIMEOUT
) -> List[Check]:
    """Broker reachable over TCP, then accepts a login with the configured credentials."""
    m = config.mqtt
    if not m.host:
        return [Check("mqtt broker", SKIP, "MQTT off ([mqtt] host not set)")]
    where = f"{m.host}:{m.port}"
    try:
        socket.create_connection((m.host, m.port), timeout=timeout).close()
    except OSError as exc:
        return [
            Check(
                "mqtt broker",
                FAIL,
                f"cannot reach {where}: {exc.strerror or exc}",
                "check [mqtt] host/port and that the broker runs "
                "(`systemctl status mosquitto` on the broker host) and the firewall",
            )
        ]
    rows = [Check("mqtt broker", OK, f"{where} reachable")]
    from ..comms.mqtt import login_from_config

    try:
        login = login_from_config(m, f"edgecam-doctor-{os.getpid()}", env)
    except EdgecamError as exc:
        return rows + [Check("mqtt login", FAIL, str(exc), "fix [mqtt] password_file")]
    try:
        accepted, reason = _mqtt_login(m, login, timeout)
    except (EdgecamError, OSError, ValueError) as exc:
        detail = str(exc) if isinstance(exc, EdgecamError) else f"{type(exc).__name__}: {exc}"
        return rows + [
            Check(
                "mqtt login",
                FAIL,
                detail,
                "check [mqtt] tls_ca / tls_cert / tls_key and the broker's TLS port",
            )
        ]
    if accepted:
        who = f"as {m.user}" if m.user else "anonymously"
        rows.append(Check("mqtt login", OK, f"accepted {who}{' over TLS' if m.tls_ca else ''}"))
    else:
        rows.append(
            Check(
                "mqtt login",
                FAIL,
                f"refused: {reason}",
                "check [mqtt] user and password_file (or EDGECAM_MQTT_PASSWORD) "
                "against the broker's password file",
            )
        )
    return rows


def check_disk(config: cfg.Config, env: Optional[Mapping[str, str]] = None) -> List[Check]:
    """Free space where the spool and snapshots are written."""
    path = cfg.state_dir(config, env)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    text = f"{free / 1024**3:.1f} GiB free for {path}" + ("" if probe == path else " (not created yet)")
    fix = "free space on the SD card (`sudo apt clean`, old snapshots, journald vacuum)"
    if free < DISK_FAIL_BYTES:
        return [Check("disk space", FAIL, text, fix)]
    if free < DISK_WARN_BYTES:
        return [Check("disk space", WARN, text, fix)]
    if probe == path and not os.access(path, os.W_OK):
        return [
            Check(
                "disk space",
                WARN,
                text + ", not writable by this user",
                "run as the service user (`sudo -u edgecam edgecam doctor`)",
            )
        ]
    return [Check("disk space", OK, text)]


def check_clips(
    config: cfg.Config, root: Path = Path("/"), env: Optional[Mapping[str, str]] = None
) -> List[Check]:
    """[clips]: which H.264 encoder records (a Pi 5 has no hardware one: software, on the CPU
    the detector needs too) and whether the clips folder can be written."""
    from ..clips.encoder import V4L2_ENCODER_DEVICE

    c = config.clips
    if not c.enabled:
        return [Check("clips", SKIP, "off ([clips] enabled = false)")]
    hardware = (root / V4L2_ENCODER_DEVICE.lstrip("/")).exists()
    rows = []
    if c.encoder == "h264_v4l2m2m" and not hardware:
        rows.append(
            Check(
                "clips encoder",
                FAIL,
                f"h264_v4l2m2m asked for, but no {V4L2_ENCODER_DEVICE}",
                'set [clips] encoder = "auto" (a Pi 5 has no hardware H.264 encoder)',
            )
        )
    elif hardware and c.encoder != "libx264":
        rows.append(
            Check(
                "clips encoder",
                OK,
                f"hardware H.264 encoder at {V4L2_ENCODER_DEVICE} "
                "(h264_v4l2m2m; picamera2's H264Encoder on the Pi camera)",
            )
        )
    else:
        why = "libx264 asked for" if hardware else "no hardware H.264 encoder (a Pi 5 has none)"
        rows.append(
            Check(
                "clips encoder",
                OK,
                f"{why}: clips are encoded in software, libx264 "
                f"{c.preset} (on the Pi camera by picamera2's LibavH264Encoder); "
                "`edgecam probe --clips` measures what it costs",
            )
        )
    folder = Path(c.dir).expanduser() if c.dir else cfg.state_dir(config, env) / "clips"
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if os.access(probe, os.W_OK):
        rows.append(
            Check("clips folder", OK, f"{folder}" + ("" if probe == folder else " (not created yet)"))
        )
    else:
        rows.append(
            Check(
                "clips folder",
                FAIL,
                f"{folder} cannot be written by this user",
                "leave [clips] dir unset (clips/ in the state directory): the service "
                "may write only /var/lib/edgecam",
            )
        )
    return rows


def check_thermal(root: Path = Path("/"), vcgencmd: Optional[str] = None) -> List[Check]:
    """CPU temperature and the firmware's throttling flags (Raspberry Pi)."""
    rows = []
    temp = soc_temperature(str(root / "sys/class/thermal"))
    if temp is None:
        rows.append(Check("cpu temperature", SKIP, "no thermal zone"))
    elif temp >= TEMP_WARN_C:
        rows.append(
            Check(
                "cpu temperature",
                WARN,
                f"{temp:.1f} °C",
                "add a heatsink or fan; the Pi throttles at 80-85 °C",
            )
        )
    else:
        rows.append(Check("cpu temperature", OK, f"{temp:.1f} °C"))
    tool = vcgencmd or shutil.which("vcgencmd")
    if not tool:
        rows.append(Check("throttling", SKIP, "vcgencmd not present (not a Raspberry Pi OS)"))
        return rows
    value = read_throttled(timeout=5.0, vcgencmd=tool)
    if value is None:
        rows.append(
            Check(
                "throttling",
                WARN,
                "vcgencmd get_throttled gave no answer",
                "add the user to group video (vcgencmd needs /dev/vchiq)",
            )
        )
        return rows
    flags = throttle_descriptions(value)
    if not flags:
        rows.append(Check("throttling", OK, "throttled=0x0"))
    else:
        fix = (
            "use the official power supply (5V 3A Pi 4, 5V 5A Pi 5) and a short cable"
            if value & 0x10001
            else "improve cooling"
        )
        rows.append(Check("throttling", WARN, f"throttled={value:#x}: {', '.join(flags)}", fix))
    return rows


def check_config(path: Optional[str]) -> Tuple[cfg.Config, List[Check]]:
    """The configuration the other checks use, and its row: the file's, or the defaults when
    the file is broken (a `fail` row then)."""
    skipped: List[str] = []
    try:
        config = cfg.resolve(path, {}, note=skipped.append)
    except EdgecamError as exc:
        return cfg.Config(), [
            Check(
                "config",
                FAIL,
                str(exc),
                "fix the file (`edgecam config check FILE`); the other checks use the defaults",
            )
        ]
    default = cfg.default_config_path()
    if skipped:
        return config, [
            Check(
                "config",
                WARN,
                skipped[0],
                "check the service's config as its user: "
                f"`sudo -u edgecam /opt/edgecam/venv/bin/edgecam doctor --config {default}`",
            )
        ]
    shown = path or (default if os.path.exists(default) else "defaults (no config file)")
    return config, [Check("config", OK, shown)]


def configured_backend(config: cfg.Config, root: Path = Path("/")) -> str:
    """The detector backend `edgecam run` would use (auto resolved against `root`)."""
    from ..backends import resolve_backend

    return resolve_backend(config.model.backend, root)


def run_checks(
    config: cfg.Config, env: Optional[Mapping[str, str]] = None, root: Path = Path("/")
) -> List[Check]:
    """Every check, in table order."""
    import dataclasses
    from ..backends import info, with_backend
    from .accelerators import check_accelerators

    backend = configured_backend(config, root)
    config = dataclasses.replace(config, model=with_backend(config.model, backend))
    rows: List[Check] = []
    rows += check_runtime()
    rows += check_cameras(config, root)
    rows += check_edgetpu(config, root)
    rows += check_accelerators(backend, root)
    if not info(backend).tflite:
        rows.append(Check("model", SKIP, f"detector {backend}: its model is checked above"))
    else:
        rows += check_model(config, env)
    rows += check_mqtt(config, env)
    rows += check_disk(config, env)
    rows += check_clips(config, root, env)
    rows += check_thermal(root)
    return rows


def format_table(rows: Sequence[Check]) -> str:
    """Aligned `STATUS  CHECK  DETAIL` lines, each failure or warning followed by its fix."""
    width = max(len(r.name) for r in rows)
    lines = []
    for r in rows:
        lines.append(f"{r.status.upper():<4}  {r.name:<{width}}  {r.detail}")
        if r.fix and r.status in (FAIL, WARN):
            lines.append(f"{'':<4}  {'':<{width}}  fix: {r.fix}")
    failed = sum(r.status == FAIL for r in rows)
    warned = sum(r.status == WARN for r in rows)
    lines.append(f"{failed} failed, {warned} warning(s)")
    return "\n".join(lines)
