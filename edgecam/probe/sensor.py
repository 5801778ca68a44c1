"""`edgecam probe --detector imx500`: the AI Camera's own DNN and DSP times per frame (from
get_kpi_info) beside the CPU time edgecam spends on that frame (decoding the outputs and
filtering them). Frames without outputs are counted, not timed."""

from __future__ import annotations

import time
from typing import Callable, List, Optional

from ..sources import PicameraCapture, SourceSpec
from ..stats import summarize


def _summary(values) -> dict:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None}
    s = summarize(values)
    return {"p50_ms": round(s.p50, 3), "p95_ms": round(s.p95, 3), "max_ms": round(s.max, 3)}


def probe_imx500(
    backend,
    runs: int = 50,
    spec: SourceSpec = SourceSpec(uri="picamera"),
    progress: Optional[Callable[[str], None]] = None,
    max_frames: int = 0,
) -> dict:
    """Capture frames until `runs` carried outputs (or `max_frames`, default 20 x runs, were
    read) and report the sensor's and the CPU's times in ms."""
    cam = PicameraCapture(spec, sensor=backend)
    dnn: List[float] = []
    dsp: List[float] = []
    cpu: List[float] = []
    frames = empty = 0
    limit = max_frames or 20 * runs
    try:
        while len(cpu) < runs and frames < limit:
            _arrays, metadata = cam.cam.capture_arrays(["main"])
            frames += 1
            t0 = time.perf_counter()
            detected = backend.read(metadata, cam.cam)
            if detected is None:
                empty += 1
                continue
            backend.postprocess(detected)
            cpu.append((time.perf_counter() - t0) * 1e3)
            if detected.dnn_ms is not None:
                dnn.append(detected.dnn_ms)
            if detected.dsp_ms is not None:
                dsp.append(detected.dsp_ms)
            if progress and len(cpu) % 10 == 0:
                progress(f"imx500: {len(cpu)}/{runs} frames")
    finally:
        cam.release()
    return {
        "detector": "imx500",
        "network": backend.network_file,
        "frames": frames,
        "frames_without_outputs": empty,
        "sensor_dnn": _summary(dnn),
        "sensor_dsp": _summary(dsp),
        "cpu_per_frame": _summary(cpu),
    }


def format_sensor_report(report: dict) -> str:
    """The report as a few aligned lines."""
    lines = [
        f"{report['network']}: {report['frames']} frame(s), "
        f"{report['frames_without_outputs']} without outputs"
    ]
    for key, what in (
        ("sensor_dnn", "sensor DNN"),
        ("sensor_dsp", "sensor DSP"),
        ("cpu_per_frame", "CPU per frame"),
    ):
        r = report[key]
        lines.append(f"  {what:<14} p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  max {r['max_ms']} ms")
    return "\n".join(lines)
