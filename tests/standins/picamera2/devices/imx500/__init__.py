"""Stand-in for picamera2.devices.imx500."""

from .imx500 import IMX500, NetworkIntrinsics  # noqa: F401
