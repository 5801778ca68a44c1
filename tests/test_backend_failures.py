"""What every accelerator backend shares: a missing package, device or model file is one line
naming the apt package, never a silent fall back to the CPU; the stand-ins leave nothing
behind."""

from __future__ import annotations

import sys

import pytest

from accelerator_fixtures import run_edgecam
from conftest import COCO_LABELS, IMAGES


@pytest.mark.parametrize("hardware,args,package", [
    ({"scene": str(IMAGES / "pets.jpg"), "imx500": {"intrinsics": None}},
     ["--detector", "imx500", "--model", "/nonexistent/net.rpk"], "imx500-all"),
    ({"scene": str(IMAGES / "pets.jpg"), "imx500": {"intrinsics": None}},
     ["--detector", "imx500"], "imx500-all"),
    ({"hailo": {"hailort": False}}, ["--detector", "hailo"], "hailo-all"),
    ({"hailo": {"hailort": True, "architecture": "HAILO10H"}},
     ["--detector", "hailo", "--labels", str(COCO_LABELS)], "hailo-h10-all"),
])
def test_missing_packages_or_files_are_one_line_and_no_cpu_fallback(standin, cli_env, hardware, args, package):
    env = {**cli_env, **standin(**hardware)}
    result = run_edgecam(env, *args, "--source", "picamera", "--json", "--max-frames", "1", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("edgecam: error:")]
    assert len(errors) == 1 and package in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_the_stand_in_leaves_no_picamera2_behind():
    """Runs after the test above (same file), whose stand-ins were on the path: this machine
    has no picamera2 again."""
    from edgecam.sources import picamera_available
    assert "picamera2" not in sys.modules and not picamera_available()
