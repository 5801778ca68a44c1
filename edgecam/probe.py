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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import click

from .errors import EdgecamError
from .modelinfo import ModelInfo, human, model_info
from .stats import LatencySummary, ResourceSampler, ResourceUsage, device_health, summarize

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
        return ProbeFrames((image,), f"noise {w}x{h} (no --source given: give real images or "
                                     "a video for representative postprocess/draw times)", True)
    from .sources import SourceSpec, open_source
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
        raise EdgecamError(f"source {source} gave no frames: give an image, a folder of "
                           "images or a video file")
    sizes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})
    return ProbeFrames(tuple(images), f"{source} ({len(images)} frames, {', '.join(sizes[:4])}"
                                      f"{', ...' if len(sizes) > 4 else ''})")


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

    def to_dict(self) -> dict:
        """JSON form (one entry of the `--json` "results" list)."""
        d = {"model": self.model, "name": os.path.basename(self.model), "kind": self.kind,
             "threads": self.threads, "delegate": self.delegate, "runs": self.runs,
             "warmup": self.warmup, "raw_invoke_fps": round(self.raw_invoke_fps, 2),
             "pipeline_fps": None if self.pipeline_fps is None else round(self.pipeline_fps, 2),
             "raw_invoke": self.raw_invoke.to_dict(),
             "stages": {k: v.to_dict() for k, v in self.stages.items()},
             "macs": self.macs, "params": self.params,
             "cpu_percent": round(self.usage.cpu_percent, 1),
             "peak_rss_mb": round(self.usage.peak_rss_mb, 1)}
        if self.skipped_stages:
            d["skipped_stages"] = list(self.skipped_stages)
            d["skip_reason"] = self.skip_reason
        if self.kind == "detector":
            d["detections"] = self.detections
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
        d = {"v": PROBE_VERSION, "runtime": self.runtime, "source": self.source,
             "device": {"machine": platform.machine(), "cpu_count": os.cpu_count(),
                        "before": self.health_before, "after": self.health_after},
             "results": results}
        if self.budget_ms is not None:
            best = select_within_budget(results, self.budget_ms)
            d["budget"] = {"ms": self.budget_ms, "stat": f"raw_invoke.{BUDGET_STAT}",
                           "model": best["model"] if best else None,
                           "threads": best["threads"] if best else None}
        return d


def select_within_budget(results: Sequence[Mapping], budget_ms: float,
                         stat: str = BUDGET_STAT) -> Optional[Mapping]:
    """The most capable result (most Mult-Adds) whose raw invoke `stat` fits `budget_ms`.

    `results` are result dicts with "macs" and "raw_invoke": {stat: ms}. Ties in Mult-Adds go
    to the faster one. None when nothing fits.
    """
    fitting = [r for r in results if r["raw_invoke"][stat] <= budget_ms]
    if not fitting:
        return None
    return max(fitting, key=lambda r: (r.get("macs") or 0, -r["raw_invoke"][stat]))


def _classifier_input(image: np.ndarray, detail: Mapping) -> np.ndarray:
    import cv2
    import numpy as np
    _, h, w, _ = map(int, detail["shape"])
    rgb = cv2.cvtColor(cv2.resize(image, (w, h)), cv2.COLOR_BGR2RGB)
    dtype = np.dtype(detail["dtype"])
    if dtype == np.uint8:
        return rgb[np.newaxis]
    if dtype == np.int8:
        return (rgb ^ 0x80).view(np.int8)[np.newaxis]
    return (rgb.astype(np.float32) / 127.5 - 1.0)[np.newaxis].astype(dtype)


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


def _stage_pass(detector, images: Sequence[np.ndarray], runs: int, warmup: int,
                publish: Optional[Publish], topic: str) -> Tuple[Dict[str, List[float]], float, int]:
    """Per-stage ms over `runs` frames (cycled), the pass's fps, and detections found."""
    from .annotate import draw, encode_jpeg, overlay_text
    from .datatypes import Frame, FrameResult

    clock = time.perf_counter
    samples: Dict[str, List[float]] = {s: [] for s in STAGES}
    found = 0
    fps = 0.0
    start = None
    for i in range(warmup + runs):
        if i == warmup:
            start = clock()
        image = images[i % len(images)]
        t0 = clock()
        tensor, transform = detector.preprocess(image)
        t1 = clock()
        raw = detector.invoke(tensor)
        t2 = clock()
        detections = detector.postprocess(raw, transform)
        t3 = clock()
        annotated = draw(image, detections, overlay_text(fps, (t2 - t1) * 1e3))
        t4 = clock()
        encode_jpeg(annotated)
        t5 = clock()
        frame = Frame(i, time.time(), time.monotonic(), image, "probe")
        payload = json.dumps(FrameResult(frame, detections, (t2 - t1) * 1e3).to_json()).encode()
        if publish is not None:
            publish(topic, payload)
        t6 = clock()
        if i >= warmup:
            for name, a, b in zip(STAGES, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
                samples[name].append((b - a) * 1e3)
            found += len(detections)
            elapsed = clock() - start
            fps = (i - warmup + 1) / elapsed if elapsed > 0 else 0.0
    wall = clock() - start if start is not None else 0.0
    return samples, (runs / wall if wall > 0 else 0.0), found


def probe_model(model: str, threads: Optional[int], frames: ProbeFrames, *, runs: int = 50,
                warmup: int = 5, labels: Optional[str] = None, delegate: Optional[str] = None,
                info: Optional[ModelInfo] = None, publish: Optional[Publish] = None,
                topic: str = "edgecam/probe/frame", runtime=None) -> ProbeResult:
    """Probe one model at one thread count (see the module docstring for what is measured)."""
    from .runtime import find_runtime, load_interpreter
    if runs < 1 or warmup < 0:
        raise EdgecamError("--runs must be >= 1 and --warmup >= 0")
    info = info or model_info(model)
    runtime = runtime or find_runtime()
    sampler = ResourceSampler()
    image = frames.images[0]
    if info.is_detector:
        from .detector import Detector
        detector = Detector.load(model, labels, threads=threads, delegate=delegate, runtime=runtime)
        interpreter = detector.interpreter
        tensor, _ = detector.preprocess(image)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    else:
        detector = None
        interpreter = load_interpreter(model, threads=threads, delegate=delegate, runtime=runtime)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], _classifier_input(image, detail))
    raw = time_raw_invoke(interpreter, runs, warmup)
    raw_summary = summarize(raw)
    raw_fps = 1000.0 / raw_summary.mean if raw_summary.mean > 0 else 0.0
    if detector is not None:
        samples, pipeline_fps, found = _stage_pass(detector, frames.images, runs, warmup,
                                                   publish, topic)
        stages = {name: summarize(v) for name, v in samples.items()}
        skipped, reason = (), ""
    else:
        stages, pipeline_fps, found = {"invoke": raw_summary}, None, 0
        skipped = DETECTION_ONLY_STAGES
        reason = "classifier (no TFLite_Detection_PostProcess): raw invoke only"
    return ProbeResult(model=model, kind="detector" if detector is not None else "classifier",
                       threads=threads, delegate=delegate or "cpu", runs=runs, warmup=warmup,
                       raw_invoke=raw_summary, raw_invoke_fps=raw_fps, stages=stages,
                       pipeline_fps=pipeline_fps, macs=info.macs, params=info.params,
                       usage=sampler.sample(), skipped_stages=skipped, skip_reason=reason,
                       detections=found, raw_samples_ms=tuple(raw))


def parse_threads(text: Optional[str]) -> Tuple[Optional[int], ...]:
    """'1,2,4' -> (1, 2, 4); empty -> (cores,). EdgecamError naming the bad value."""
    if not text:
        return (os.cpu_count() or 1,)
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 64:
            raise EdgecamError(f"--threads {text!r}: give thread counts 1..64 separated by "
                               "commas, e.g. 1,2,4")
        out.append(int(part))
    return tuple(dict.fromkeys(out))


def run_probe(models: Sequence[str], *, threads: Sequence[Optional[int]] = (None,),
              runs: int = 50, warmup: int = 5, source: Optional[str] = None,
              labels: Optional[str] = None, delegate: Optional[str] = None,
              budget_ms: Optional[float] = None, publish: Optional[Publish] = None,
              topic: str = "edgecam/probe/frame",
              progress: Optional[Callable[[str], None]] = None) -> ProbeReport:
    """Probe every model at every thread count on frames from `source`.

    `labels` applies to detection models only. `publish(topic, payload)` makes the publish
    stage a real transport publish instead of serialisation alone.
    """
    from .runtime import find_runtime
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
            results.append(probe_model(m, t, frames, runs=runs, warmup=warmup,
                                       labels=labels if infos[m].is_detector else None,
                                       delegate=delegate, info=infos[m], publish=publish,
                                       topic=topic, runtime=runtime))
    return ProbeReport(runtime.describe(), frames.description, tuple(results), before,
                       device_health(), budget_ms)


def probe_to_payload(report: ProbeReport) -> bytes:
    """The retained `<prefix>/probe` MQTT payload: the `--json` document as UTF-8 bytes."""
    return json.dumps(report.to_dict(), separators=(",", ":")).encode()


# ---------------------------------------------------------------------------- text output

def _ms(v: float) -> str:
    return f"{v:8.2f}"


def _health_line(label: str, h: Mapping) -> str:
    temp = f"{h['soc_temp_c']:.1f} °C" if h.get("soc_temp_c") is not None else "n/a"
    thr = h.get("throttled")
    if thr is None:
        throttle = "n/a (no vcgencmd)"
    else:
        on = [k for k, v in (h.get("throttle_flags") or {}).items() if v]
        throttle = f"{thr}" + (f" ({', '.join(on)})" if on else " (none)")
    return f"{label}: SoC temperature {temp}, throttling {throttle}"


def format_report(report: ProbeReport) -> str:
    """The human-readable probe report: per-result stage table, comparison, budget pick."""
    lines = [f"runtime: {report.runtime} | {platform.machine()}, {os.cpu_count()} cores",
             f"source: {report.source}", _health_line("before", report.health_before)]
    for r in report.results:
        lines.append("")
        lines.append(f"{os.path.basename(r.model)}  threads={r.threads}  delegate={r.delegate}"
                     f"  runs={r.runs} warmup={r.warmup}")
        lines.append(f"  {'stage':<12}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  ms")
        rows = [(n, s) for n, s in r.stages.items() if r.kind == "detector"]
        rows.append(("raw invoke", r.raw_invoke))
        for name, s in rows:
            lines.append(f"  {name:<12}{_ms(s.p50)}{_ms(s.p95)}{_ms(s.p99)}{_ms(s.max)}")
        if r.skipped_stages:
            lines.append(f"  skipped: {', '.join(r.skipped_stages)} ({r.skip_reason})")
        pipe = (f" | sequential pipeline {r.pipeline_fps:.1f} fps"
                if r.pipeline_fps is not None else "")
        lines.append(f"  raw invoke {r.raw_invoke_fps:.1f} fps{pipe}"
                     f" | CPU {r.usage.cpu_percent:.0f} % | peak RSS {r.usage.peak_rss_mb:.0f} MB"
                     f" | {human(r.macs)} Mult-Adds, {human(r.params)} params")
    lines.append("")
    lines.append(_health_line("after", report.health_after))
    if len(report.results) > 1:
        lines.append("")
        lines.append("comparison (sorted by raw invoke p50):")
        lines.append(f"  {'model':<40}{'threads':>8}{'p50 ms':>9}{'p95 ms':>9}{'raw fps':>9}"
                     f"{'pipe fps':>9}{'Mult-Adds':>11}{'params':>9}")
        for r in sorted(report.results, key=lambda r: r.raw_invoke.p50):
            pipe = f"{r.pipeline_fps:.1f}" if r.pipeline_fps is not None else "-"
            lines.append(f"  {os.path.basename(r.model)[:39]:<40}{r.threads!s:>8}"
                         f"{r.raw_invoke.p50:9.2f}{r.raw_invoke.p95:9.2f}{r.raw_invoke_fps:9.1f}"
                         f"{pipe:>9}{human(r.macs):>11}{human(r.params):>9}")
    if report.budget_ms is not None:
        best = select_within_budget([r.to_dict() for r in report.results], report.budget_ms)
        lines.append("")
        if best is None:
            lines.append(f"budget {report.budget_ms:g} ms (raw invoke p95): no model fits")
        else:
            lines.append(f"budget {report.budget_ms:g} ms (raw invoke p95): most capable model "
                         f"that fits: {best['name']} threads={best['threads']} "
                         f"(p95 {best['raw_invoke']['p95_ms']:.2f} ms, {human(best['macs'])} "
                         "Mult-Adds)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- plot

def write_plot(report: ProbeReport, path: str) -> None:
    """A PNG: per-stage p50 bars (p95 whiskers) per result, and raw invoke histograms."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        raise EdgecamError("--plot needs matplotlib: run `pip install edgecam[plot]` "
                           "(or `pip install matplotlib`)") from None
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [f"{Path(r.model).stem} t{r.threads}" for r in report.results]
    width = 0.8 / max(1, len(report.results))
    for i, r in enumerate(report.results):
        names = list(r.stages)
        x = np.array([STAGES.index(n) for n in names], dtype=float) + i * width
        p50 = [r.stages[n].p50 for n in names]
        p95 = [r.stages[n].p95 - r.stages[n].p50 for n in names]
        bars.bar(x, p50, width, yerr=[np.zeros(len(p50)), p95], capsize=3, label=labels[i])
        hist.hist(r.raw_samples_ms, bins=30, alpha=0.6, label=labels[i])
    bars.set_xticks(np.arange(len(STAGES)) + width * (len(report.results) - 1) / 2)
    bars.set_xticklabels(STAGES)
    bars.set_ylabel("ms (bar p50, whisker p95)")
    bars.set_title("per-stage latency")
    bars.legend(fontsize=8)
    hist.set_xlabel("raw invoke ms")
    hist.set_ylabel("runs")
    hist.set_title(f"raw invoke latency ({report.runtime})")
    hist.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise EdgecamError(f"cannot write plot {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------- remote probe

@dataclass(frozen=True)
class RemoteProbeRequest:
    """A `<prefix>/cmd/probe` request, validated: models, thread counts, runs, warmup."""

    models: Tuple[str, ...]
    threads: Tuple[Optional[int], ...]
    runs: int
    warmup: int


def parse_probe_request(payload: bytes, default_model: str,
                        allowed_models: Sequence[str] = ()) -> RemoteProbeRequest:
    """Parse a cmd/probe payload: empty, or JSON {"models": [...], "threads": [1, 2],
    "runs": 30, "warmup": 3}. Only the running model and `allowed_models` may be probed, so a
    remote message cannot make the device open arbitrary files. ValueError when invalid."""
    text = (payload or b"").decode("utf-8", "replace").strip()
    try:
        req = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"probe request is not JSON: {exc.msg}") from None
    if not isinstance(req, dict):
        raise ValueError("probe request must be a JSON object")
    allowed = {default_model, *allowed_models}
    by_name = {os.path.basename(m): m for m in allowed}
    models = []
    for m in req.get("models") or [default_model]:
        path = m if m in allowed else by_name.get(str(m))
        if path is None:
            raise ValueError(f"model {m!r} may not be probed remotely (allowed: "
                             f"{', '.join(sorted(by_name))})")
        models.append(path)
    threads = req.get("threads") or [None]
    if not isinstance(threads, list) or not all(t is None or (isinstance(t, int) and 1 <= t <= 64)
                                                for t in threads):
        raise ValueError("threads must be a list of integers 1..64")
    runs, warmup = req.get("runs", 30), req.get("warmup", 3)
    if not isinstance(runs, int) or not 1 <= runs <= REMOTE_MAX_RUNS:
        raise ValueError(f"runs must be an integer 1..{REMOTE_MAX_RUNS}")
    if not isinstance(warmup, int) or not 0 <= warmup <= 100:
        raise ValueError("warmup must be an integer 0..100")
    return RemoteProbeRequest(tuple(models), tuple(threads), runs, warmup)


class RemoteProbe:
    """Runs probes requested over MQTT (`<prefix>/cmd/probe`), one at a time, in a thread.

    Wire it with `RemoteProbe(comm.publish, prefix, model_path, ...).register(dispatcher)`
    (edgecam.comms.dispatcher.Dispatcher), or subscribe `handle` to the topic directly. The
    report is published retained on `<prefix>/probe` (a failed run publishes
    {"v": 1, "error": ...} there). A bad request, or one arriving while a probe runs, is
    refused. The probe runs beside the live pipeline, so its numbers include that contention.
    """

    def __init__(self, publish: Callable[..., object], prefix: str, default_model: str, *,
                 allowed_models: Sequence[str] = (), source: Optional[str] = None,
                 labels: Optional[str] = None, delegate: Optional[str] = None):
        self._publish = publish
        self.topic = f"{prefix.rstrip('/')}/probe"
        self._default_model, self._allowed = default_model, tuple(allowed_models)
        self._source, self._labels, self._delegate = source, labels, delegate
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def register(self, dispatcher) -> None:
        """Register `cmd/probe` with a Dispatcher (bad requests go to its `<prefix>/error`)."""
        dispatcher.register_command("probe", self.on_command)

    def _send(self, payload: bytes) -> None:
        self._publish(self.topic, payload, retain=True)

    def _error(self, message: str) -> None:
        self._send(json.dumps({"v": PROBE_VERSION, "error": message}).encode())

    def on_command(self, payload: bytes) -> None:
        """Start a probe for this request; ValueError when it is invalid or one is running.

        Returns at once (the probe runs in its own thread), as the dispatcher requires.
        """
        req = parse_probe_request(payload, self._default_model, self._allowed)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise ValueError("a probe is already running: wait for its result on "
                                 f"{self.topic}")
            self._thread = threading.Thread(target=self._run, args=(req,), name="edgecam-probe",
                                            daemon=True)
            self._thread.start()

    def handle(self, _topic: str, payload: bytes) -> bool:
        """Subscription callback form of `on_command`: refusals are published on the probe
        topic instead of raised. True when a probe was started."""
        try:
            self.on_command(payload)
        except ValueError as exc:
            self._error(str(exc))
            return False
        return True

    def _run(self, req: RemoteProbeRequest) -> None:
        try:
            report = run_probe(req.models, threads=req.threads, runs=req.runs,
                               warmup=req.warmup, source=self._source, labels=self._labels,
                               delegate=self._delegate)
        except EdgecamError as exc:
            self._error(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a remote probe must never kill the service
            log.exception("remote probe failed")
            self._error(f"probe failed: {type(exc).__name__}: {exc}")
            return
        self._send(probe_to_payload(report))

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the running probe to finish; True when none is running."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True


# ---------------------------------------------------------------------------- CLI

class _MqttPublisher:
    """A plain paho client for `probe --mqtt`: the publish stage measures a real publish."""

    def __init__(self, host: str, port: int):
        import paho.mqtt.client as mqtt
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=f"edgecam-probe-{os.getpid()}")
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise EdgecamError(f"cannot connect to the MQTT broker {host}:{port} "
                               f"({exc.strerror or exc}): check --mqtt HOST[:PORT]") from None
        self._client.loop_start()

    def __call__(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload)

    def publish_retained(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        """Publish a retained QoS 1 message and wait until the broker has it."""
        self._client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()


@click.command("probe")
@click.option("--model", "models", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Model to probe (repeat to compare several).")
@click.option("--labels", type=click.Path(dir_okay=False), help="Label file for detection models.")
@click.option("--threads", "threads_text", default=None, metavar="N[,N...]",
              help="Interpreter thread counts to try, e.g. 1,2,4 (default: number of cores).")
@click.option("--runs", default=50, show_default=True, type=click.IntRange(1, 100000),
              help="Timed runs per model and thread count.")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0, 10000),
              help="Untimed runs first.")
@click.option("--source", default=None, help="Image, folder of images, video file or camera to "
              "take frames from (default: a noise frame; real frames are better).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of per-stage latency and invoke histograms (needs matplotlib).")
@click.option("--budget-ms", type=float, default=None,
              help="Name the most capable model whose raw invoke p95 fits this budget.")
@click.option("--delegate", type=click.Choice(["cpu", "edgetpu"]), default="cpu", show_default=True)
@click.option("--mqtt", "mqtt_broker", default=None, metavar="HOST[:PORT]",
              help="Publish each frame's JSON for real, and the results retained on <prefix>/probe.")
@click.option("--mqtt-prefix", default=None, help="Topic prefix (default: edgecam/<hostname>).")
def probe_command(models, labels, threads_text, runs, warmup, source, as_json, plot, budget_ms,
                  delegate, mqtt_broker, mqtt_prefix):
    """Measure each model's latency on this device: per stage p50/p95/p99/max, fps, CPU, RSS."""
    threads = parse_threads(threads_text)
    publisher = None
    prefix = None
    if mqtt_broker:
        from .comms.identity import parse_host_port, resolve_device_id, topic_prefix
        prefix = topic_prefix(mqtt_prefix, resolve_device_id(None))
        publisher = _MqttPublisher(*parse_host_port(mqtt_broker))
    try:
        progress = None if as_json else (lambda msg: click.echo(msg, err=True))
        report = run_probe(list(models), threads=threads, runs=runs, warmup=warmup, source=source,
                           labels=labels, delegate=None if delegate == "cpu" else delegate,
                           budget_ms=budget_ms, publish=publisher,
                           topic=f"{prefix}/probe/frame" if prefix else "edgecam/probe/frame",
                           progress=progress)
        if publisher is not None:
            publisher.publish_retained(f"{prefix}/probe", probe_to_payload(report))
    finally:
        if publisher is not None:
            publisher.close()
    if plot:
        write_plot(report, plot)
    click.echo(json.dumps(report.to_dict()) if as_json else format_report(report))
