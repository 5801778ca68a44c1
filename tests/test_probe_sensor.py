"""`edgecam probe` for the AI Camera: the sensor's own DNN and DSP times beside the CPU time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from edgecam.detector import DetectOptions
from edgecam.sources import SourceSpec

from accelerator_fixtures import intrinsics
from conftest import IMAGES


def test_probe_reports_the_sensor_times_beside_the_cpu_time(standin, network):
    from edgecam.backends.imx500 import Imx500Backend
    from edgecam.probe.sensor import probe_imx500
    standin(scene=str(IMAGES / "grace_hopper.bmp"),
            imx500={"intrinsics": intrinsics(), "frames_without_outputs": 2})
    backend = Imx500Backend.load(str(network), None, DetectOptions())
    report = probe_imx500(backend, runs=5, spec=SourceSpec(uri="picamera", width=640, height=480))
    assert report["frames"] == 7 and report["frames_without_outputs"] == 2
    # The stand-in reports its CPU SSD's invoke time as the DNN time, 1.2 ms as the DSP's.
    assert report["sensor_dnn"]["p50_ms"] > 1 and report["sensor_dsp"]["p50_ms"] == 1.2
    assert report["cpu_per_frame"]["p50_ms"] > 0


def test_probe_command_for_the_imx500(standin, network, cli_env):
    env = dict(os.environ, **cli_env, **standin(scene=str(IMAGES / "pets.jpg"),
                                                 imx500={"intrinsics": intrinsics()}))
    result = subprocess.run([sys.executable, "-m", "edgecam", "probe", "--detector", "imx500",
                             "--model", str(network), "--runs", "3", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 3 and report["sensor_dsp"]["p50_ms"] == 1.2
    assert report["sensor_dnn"]["p50_ms"] > 0 and report["cpu_per_frame"]["p50_ms"] > 0
    text = subprocess.run([sys.executable, "-m", "edgecam", "probe", "--detector", "imx500",
                           "--model", str(network), "--runs", "3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "sensor DNN" in text.stdout and "CPU per frame" in text.stdout
