"""Stand-in for picamera2.devices: IMX500 always importable; Hailo only when HailoRT is
"installed" in the hardware description (picamera2 imports it inside try/except
ModuleNotFoundError, so without hailo_platform the name is simply missing)."""

from standin_hardware import hardware

from .imx500 import IMX500  # noqa: F401

if hardware().get("hailo", {}).get("hailort", False):
    from .hailo import Hailo, hailo_architecture  # noqa: F401
