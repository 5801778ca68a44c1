"""MQTT side of edgecam: a transport behind a small interface, commands, spool, HA discovery.

`build_mqtt` (in `builder`) wires the pieces together from the configuration.
"""

from .builder import build_mqtt  # noqa: E402,F401
