"""Who this device is on the broker: device id, topic prefix, broker address, password."""

from __future__ import annotations

import os
import re
import socket
from typing import Mapping, Optional, Tuple

from ..errors import EdgecamError
from ..labels import slug

PASSWORD_ENV = "EDGECAM_MQTT_PASSWORD"
TOPIC_ROOT = "edgecam"  # the default prefix is <root>/<device id>
_FORBIDDEN = re.compile(r"[+#/\s]")


def sanitise_device_id(name: str) -> str:
    """A hostname turned into a safe id: lower case, runs of other characters -> '-'."""
    return slug(name.split(".")[0].lower(), sep="-", empty="edgecam")


def resolve_device_id(explicit: Optional[str], hostname: Optional[str] = None) -> str:
    """The explicit id, checked, else the sanitised hostname.

    An explicit id containing an MQTT wildcard, '/' or whitespace is refused rather than
    silently rewritten, because other tools address the device by exactly that id.
    """
    if explicit is not None:
        if not explicit or _FORBIDDEN.search(explicit):
            raise EdgecamError(f"device id {explicit!r} is not usable in MQTT topics: "
                               "use letters, digits, '-' or '_' (no + # / or spaces)")
        return explicit
    return sanitise_device_id(hostname if hostname is not None else socket.gethostname())


def topic_prefix(explicit: Optional[str], device_id: str) -> str:
    """The configured prefix (trailing '/' dropped), else edgecam/<device_id>."""
    if explicit is None:
        return f"{TOPIC_ROOT}/{device_id}"
    prefix = explicit.rstrip("/")
    if not prefix or "+" in prefix or "#" in prefix:
        raise EdgecamError(f"mqtt prefix {explicit!r} is not a valid topic prefix: "
                           "it must be non-empty and contain no + or #")
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
            raise EdgecamError(f"cannot read mqtt password file {password_file}: "
                               f"{exc.strerror}") from None
    return env.get(PASSWORD_ENV) or None
