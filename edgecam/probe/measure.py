"""`edgecam probe`: how fast each model runs on this device, stage by stage.

For every model and thread count the probe measures:

- raw invoke: `interpreter.invoke()` alone, on an input made from a real frame, `runs` times
  after `warmup` untimed runs; `raw_invoke_fps` = 1000 / mean raw invoke ms;
- a per-stage pass (detection models only) over real frames, one frame after the other in a
  single thread: preprocess, invoke (set input + invoke + read outputs), postprocess, draw,
  encode (JPEG) and publish (JSON serialisation, plus a real MQTT publish when a publisher is
  given); `pipeline_fps` = frames / wall time of that pass. The concurrent pipeline hides the
  non-invoke stages behind inference, so its fps lies between this and the raw invoke fps.

Classifiers (no TFLite_Detection_PostProcess) have no detections to draw or publish: they are
probed for raw invoke only and the skipped stages are listed in the result.

Budget selection (`--budget-ms`) compares the raw invoke **p95** with the budget, so that 95 %
of frames fit, and names the model with the most Mult-Adds among those that fit.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import EdgecamError
from ..modelinfo import ModelInfo, model_info
from ..runtime import (
    DETECTION_POSTPROCESS_OP,
    find_runtime,
    input_converter,
    input_details,
    input_size,
    load_interpreter,
    set_input,
)
from ..stats import LatencySummary, ResourceSampler, ResourceUsage, Stopwatch, device_health, summarize

if TYPE_CHECKING:  # numpy is imported where used, to keep `edgecam --help` fast
    import numpy as np

log = logging.getLogger(__name__)

PROBE_VERSION = 1
STAGES = ("preprocess", "invoke", "postprocess", "draw", "encode", "publish")
DETECTION_ONLY_STAGES = ("preprocess", "postprocess", "draw", "encode", "publish")
BUDGET_STAT = "p95_ms"
NOISE_SIZE = (640, 480)
MAX_FRAMES = 64  # frames held in memory for the pass; they are cycled when runs > frames
REMOTE_MAX_RUNS = 500

Publish = Callable[[str, bytes], None]


@dataclass(frozen=True)
class ProbeFrames:
    """The frames the probe runs on (BGR images) and a description of where they came from."""

    images: Tuple[np.ndarray, ...]
    description: str
    synthetic: bool = False


def load_frames(source: Optional[str], limit: int = MAX_FRAMES) -> ProbeFrames:
    """Up to `limit` frames from an image, folder, video or camera (read once, kept in memory).

    With no source, one frame of seeded noise: invoke timing is still right, but postprocess,
    draw and publish see no real detections, so the description says so.
    """
    import numpy as np

    if not source:
        rng = np.random.default_rng(0)
        w, h = NOISE_SIZE
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        return ProbeFrames(
            (image,),
            f"noise {w}x{h} (no --source given: give real images or "
            "a video for representative postprocess/draw times)",
            True,
        )
    from ..sources import SourceSpec, open_source

    src = open_source(SourceSpec(uri=source))
    images: List[np.ndarray] = []
    try:
        for frame in src.frames():
            images.append(frame.image)
            if len(images) >= limit:
                break
    finally:
        src.close()
    if not images:
        raise EdgecamError(
            f"source {source} gave no frames: give an image, a folder of images or a video file"
        )
    sizes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})
    return ProbeFrames(
        tuple(images),
        f"{source} ({len(images)} frames, {', '.join(sizes[:4])}{', ...' if len(sizes) > 4 else ''})",
    )


@dataclass(frozen=True)
class ProbeResult:
    """One model at one thread count."""

    model: str
    kind: str  # "detector" or "classifier"
    threads: Optional[int]
    delegate: str
    runs: int
    warmup: int
    raw_invoke: LatencySummary
    raw_invoke_fps: float
    stages: Dict[str, LatencySummary]
    pipeline_fps: Optional[float]
    macs: int
    params: int
    usage: ResourceUsage
    skipped_stages: Tuple[str, ...] = ()
    skip_reason: str = ""
    detections: int = 0
    raw_samples_ms: Tuple[float, ...] = field(default=(), repr=False)
    # Detectors: (fewest, most) model runs per frame of each [detect] regions mode on the
    # probe's first frame, of `frame_size` (edgecam.regions.runs_per_frame).
    regions: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    frame_size: Tuple[int, int] = (0, 0)

    def region_ms(self) -> Dict[str, Tuple[float, float]]:
        """(fewest, most) ms per frame of each regions mode: its runs at the raw invoke p50."""
        p50 = self.raw_invoke.p50
        return {mode: (lo * p50, hi * p50) for mode, (lo, hi) in self.regions.items()}

    def to_dict(self) -> dict:
        """JSON form (one entry of the `--json` "results" list)."""
        d: Dict[str, Any] = {
            "model": self.model,
            "name": os.path.basename(self.model),
            "kind": self.kind,
            "threads": self.threads,
            "delegate": self.delegate,
            "runs": self.runs,
            "warmup": self.warmup,
            "raw_invoke_fps": round(self.raw_invoke_fps, 2),
            "pipeline_fps": None if self.pipeline_fps is None else round(self.pipeline_fps, 2),
            "raw_invoke": self.raw_invoke.to_dict(),
            "stages": {k: v.to_dict() for k, v in self.stages.items()},
            "macs": self.macs,
            "params": self.params,
            "cpu_percent": round(self.usage.cpu_percent, 1),
            "peak_rss_mb": round(self.usage.peak_rss_mb, 1),
        }
        if self.skipped_stages:
            d["skipped_stages"] = list(self.skipped_stages)
            d["skip_reason"] = self.skip_reason
        if self.kind == "detector":
            d["detections"] = self.detections
            d["regions"] = {
                "frame": list(self.frame_size),
                **{
                    mode: {
                        "runs_per_frame": list(self.regions[mode]),
                        "ms_per_frame": [round(v, 2) for v in ms],
                    }
                    for mode, ms in self.region_ms().items()
                },
            }
        return d


@dataclass(frozen=True)
class ProbeReport:
    """All results of one probe run, with the runtime, source and device health around it."""

    runtime: str
    source: str
    results: Tuple[ProbeResult, ...]
    health_before: dict
    health_after: dict
    budget_ms: Optional[float] = None

    def to_dict(self) -> dict:
        """The `--json` document: {"v": 1, "runtime", "results": [...], ...}."""
        results = [r.to_dict() for r in self.results]
        d = {
            "v": PROBE_VERSION,
            "runtime": self.runtime,
            "source": self.source,
            "device": {
                "machine": platform.machine(),
                "cpu_count": os.cpu_count(),
                "before": self.health_before,
                "after": self.health_after,
            },
            "results": results,
        }
        if self.budget_ms is not None:
            best = self.budget_pick()
            d["budget"] = {
                "ms": self.budget_ms,
                "stat": f"raw_invoke.{BUDGET_STAT}",
                "model": best["model"] if best else None,
                "threads": best["threads"] if best else None,
            }
        return d

    def budget_pick(self) -> Optional[Mapping]:
        """The result `--budget-ms` names, in its JSON form (see `select_within_budget`): the
        one place the pick is made, for the JSON document and the text report alike. None
        without a budget or when nothing fits."""
        if self.budget_ms is None:
            return None
        return select_within_budget([r.to_dict() for r in self.results], self.budget_ms)


def select_within_budget(
    results: Sequence[Mapping], budget_ms: float, stat: str = BUDGET_STAT
) -> Optional[Mapping]:
    """The most capable result (most Mult-Adds) whose raw invoke `stat` fits `budget_ms`.

    `results` are result dicts with "macs" and "raw_invoke": {stat: ms}. Ties in Mult-Adds go
    to the faster one. None when nothing fits.
    """
    fitting = [r for r in results if r["raw_invoke"][stat] <= budget_ms]
    if not fitting:
        return None
    return max(fitting, key=lambda r: (r.get("macs") or 0, -r["raw_invoke"][stat]))


def time_raw_invoke(interpreter, runs: int, warmup: int) -> List[float]:
    """ms of `runs` calls of interpreter.invoke() (input already set), after `warmup` calls."""
    for _ in range(warmup):
        interpreter.invoke()
    samples = []
    clock = time.perf_counter
    for _ in range(runs):
        t0 = clock()
        interpreter.invoke()
        samples.append((clock() - t0) * 1e3)
    return samples


def _stage_pass(
    detector, images: Sequence[np.ndarray], runs: int, warmup: int, publish: Optional[Publish], topic: str
) -> Tuple[Dict[str, List[float]], float, int]:
    """Per-stage ms over `runs` frames (cycled), the pass's fps, and detections found."""
    from ..annotate import draw, encode_jpeg, overlay_text
    from ..datatypes import Frame

    clock = time.perf_counter
    samples: Dict[str, List[float]] = {s: [] for s in STAGES}
    found = 0
    fps = 0.0
    start = None
    for i in range(warmup + runs):
        if i == warmup:
            start = clock()
        image = images[i % len(images)]
        result = detector.detect(Frame(i, time.time(), time.monotonic(), image, "probe"))
        watch = Stopwatch()
        annotated = draw(image, result.detections, overlay_text(fps, result.inference_ms))
        watch.lap("draw")
        encode_jpeg(annotated)
        watch.lap("encode")
        payload = json.dumps(result.to_json()).encode()
        if publish is not None:
            publish(topic, payload)
        watch.lap("publish")
        if i >= warmup:
            stage_ms = {**result.timings, **watch.laps}
            for name in STAGES:
                samples[name].append(stage_ms[name])
            found += len(result.detections)
            elapsed = clock() - start if start is not None else 0.0  # set at i == warmup
            fps = (i - warmup + 1) / elapsed if elapsed > 0 else 0.0
    wall = clock() - start if start is not None else 0.0
    return samples, (runs / wall if wall > 0 else 0.0), found


def probe_model(
    model: str,
    threads: Optional[int],
    frames: ProbeFrames,
    *,
    runs: int = 50,
    warmup: int = 5,
    labels: Optional[str] = None,
    delegate: Optional[str] = None,
    info: Optional[ModelInfo] = None,
    publish: Optional[Publish] = None,
    topic: str = "edgecam/probe/frame",
    runtime=None,
) -> ProbeResult:
    """Probe one model at one thread count (see the module docstring for what is measured)."""
    if runs < 1 or warmup < 0:
        raise EdgecamError("--runs must be >= 1 and --warmup >= 0")
    info = info or model_info(model)
    runtime = runtime or find_runtime()
    sampler = ResourceSampler()
    image = frames.images[0]
    if info.is_detector:
        from ..detector import Detector

        detector = Detector.load(model, labels, threads=threads, delegate=delegate, runtime=runtime)
        interpreter = detector.interpreter
        tensor, _ = detector.preprocess(image)
    else:
        from ..detector import image_to_input

        detector = None
        interpreter = load_interpreter(model, threads=threads, delegate=delegate, runtime=runtime)
        tensor, _ = image_to_input(
            image, input_size(interpreter), input_converter(input_details(interpreter))
        )
    set_input(interpreter, tensor)
    raw = time_raw_invoke(interpreter, runs, warmup)
    raw_summary = summarize(raw)
    raw_fps = 1000.0 / raw_summary.mean if raw_summary.mean > 0 else 0.0
    if detector is not None:
        samples, pipeline_fps, found = _stage_pass(detector, frames.images, runs, warmup, publish, topic)
        stages = {name: summarize(v) for name, v in samples.items()}
        skipped: Tuple[str, ...] = ()
        reason = ""
    else:
        stages, pipeline_fps, found = {"invoke": raw_summary}, None, 0
        skipped = DETECTION_ONLY_STAGES
        reason = f"classifier (no {DETECTION_POSTPROCESS_OP}): raw invoke only"
    regions: Dict[str, Tuple[int, int]] = {}
    if detector is not None:
        from ..regions import runs_per_frame

        regions = runs_per_frame(image.shape[1], image.shape[0], detector.input_size)
    return ProbeResult(
        model=model,
        kind="detector" if detector is not None else "classifier",
        threads=threads,
        delegate=delegate or "cpu",
        runs=runs,
        warmup=warmup,
        raw_invoke=raw_summary,
        raw_invoke_fps=raw_fps,
        stages=stages,
        pipeline_fps=pipeline_fps,
        macs=info.macs,
        params=info.params,
        usage=sampler.sample(),
        skipped_stages=skipped,
        skip_reason=reason,
        detections=found,
        raw_samples_ms=tuple(raw),
        regions=regions,
        frame_size=(image.shape[1], image.shape[0]),
    )


def parse_threads(text: Optional[str]) -> Tuple[Optional[int], ...]:
    """'1,2,4' -> (1, 2, 4); empty -> (cores,). EdgecamError naming the bad value."""
    if not text:
        return (os.cpu_count() or 1,)
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 64:
            raise EdgecamError(
                f"--threads {text!r}: give thread counts 1..64 separated by commas, e.g. 1,2,4"
            )
        out.append(int(part))
    return tuple(dict.fromkeys(out))


def run_probe(
    models: Sequence[str],
    *,
    threads: Sequence[Optional[int]] = (None,),
    runs: int = 50,
    warmup: int = 5,
    source: Optional[str] = None,
    labels: Optional[str] = None,
    delegate: Optional[str] = None,
    budget_ms: Optional[float] = None,
    publish: Optional[Publish] = None,
    topic: str = "edgecam/probe/frame",
    progress: Optional[Callable[[str], None]] = None,
) -> ProbeReport:
    """Probe every model at every thread count on frames from `source`.

    `labels` applies to detection models only. `publish(topic, payload)` makes the publish
    stage a real transport publish instead of serialisation alone.
    """
    if not models:
        raise EdgecamError("no model to probe: give --model PATH (repeat it to compare models)")
    if budget_ms is not None and budget_ms <= 0:
        raise EdgecamError("--budget-ms must be > 0")
    infos = {m: model_info(m) for m in models}
    runtime = find_runtime()
    frames = load_frames(source)
    before = device_health()
    results = []
    for m in models:
        for t in threads:
            if progress:
                progress(f"probing {os.path.basename(m)} threads={t} ...")
            results.append(
                probe_model(
                    m,
                    t,
                    frames,
                    runs=runs,
                    warmup=warmup,
                    labels=labels if infos[m].is_detector else None,
                    delegate=delegate,
                    info=infos[m],
                    publish=publish,
                    topic=topic,
                    runtime=runtime,
                )
            )
    return ProbeReport(
        runtime.describe(), frames.description, tuple(results), before, device_health(), budget_ms
    )


def probe_to_payload(report: ProbeReport) -> bytes:
    """The retained `<prefix>/probe` MQTT payload: the `--json` document as UTF-8 bytes."""
    return json.dumps(report.to_dict(), separators=(",", ":")).encode()
