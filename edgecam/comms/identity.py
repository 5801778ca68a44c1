"""Who this device is on the broker: device id, topic prefix, broker address, password."""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path
from typing import Mapping, Optional, Tuple

from ..errors import EdgecamError
from ..labels import slug

PASSWORD_ENV = "EDGECAM_MQTT_PASSWORD"
TOPIC_ROOT = "edgecam"  # the default prefix is <root>/<device id>
_FORBIDDEN = re.compile(r"[+#/\s]")
STOCK_HOSTNAME = "raspberrypi"  # what Raspberry Pi OS images are called until renamed
# Where the board serial is exposed (the same device-tree node, two paths).
SERIAL_FILES = ("proc/device-tree/serial-number", "sys/firmware/devicetree/base/serial-number")

log = logging.getLogger("edgecam.mqtt")


def sanitise_device_id(name: str) -> str:
    """A hostname turned into a safe id: lower case, runs of other characters -> '-'."""
    return slug(name.split(".")[0].lower(), sep="-", empty="edgecam")


def board_serial(root: Path = Path("/")) -> Optional[str]:
    """The board serial from the device tree under `root` (lower case, without the NUL and
    the leading zeros), None where there is none (not a Pi, no device tree)."""
    for name in SERIAL_FILES:
        try:
            raw = (root / name).read_bytes()
        except OSError:
            continue
        serial = re.sub(r"[^0-9a-z]", "", raw.decode("ascii", "replace").lower()).lstrip("0")
        if serial:
            return serial
    return None


def resolve_device_id(explicit: Optional[str], hostname: Optional[str] = None, root: Path = Path("/")) -> str:
    """The explicit id, checked, else the sanitised hostname, else for a Pi still called
    `raspberrypi` (every fresh image is) `rpi-<board serial>`, unique and stable per board.

    An explicit id containing an MQTT wildcard, '/' or whitespace is refused rather than
    silently rewritten, because other tools address the device by exactly that id.
    `root`: where /proc and /sys are (tests).
    """
    if explicit is not None:
        if not explicit or _FORBIDDEN.search(explicit):
            raise EdgecamError(
                f"device id {explicit!r} is not usable in MQTT topics: "
                "use letters, digits, '-' or '_' (no + # / or spaces)"
            )
        return explicit
    name = sanitise_device_id(hostname if hostname is not None else socket.gethostname())
    if name != STOCK_HOSTNAME:
        return name
    serial = board_serial(root)
    if serial is None:
        log.warning(
            "mqtt: the hostname is the stock %r and no board serial was found: two such "
            "devices on one broker would share a device id; set [mqtt] device_id",
            STOCK_HOSTNAME,
        )
        return name
    return f"rpi-{serial}"


def topic_prefix(explicit: Optional[str], device_id: str) -> str:
    """The configured prefix (trailing '/' dropped), else edgecam/<device_id>."""
    if explicit is None:
        return f"{TOPIC_ROOT}/{device_id}"
    prefix = explicit.rstrip("/")
    if not prefix or "+" in prefix or "#" in prefix:
        raise EdgecamError(
            f"mqtt prefix {explicit!r} is not a valid topic prefix: "
            "it must be non-empty and contain no + or #"
        )
    return prefix


def parse_host_port(value: str, default_port: int = 1883) -> Tuple[str, int]:
    """'host', 'host:port' or '[v6addr]:port' -> (host, port); a clear error otherwise."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise EdgecamError(f"--mqtt {value!r}: expected HOST or HOST:PORT")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise EdgecamError(f"--mqtt {value!r}: port must be a number between 1 and 65535")
    return host, int(port_text)


def read_password(password_file: Optional[str], env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The password from the file (first line) if given, else from EDGECAM_MQTT_PASSWORD."""
    env = os.environ if env is None else env
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise EdgecamError(f"cannot read mqtt password file {password_file}: {exc.strerror}") from None
    return env.get(PASSWORD_ENV) or None
