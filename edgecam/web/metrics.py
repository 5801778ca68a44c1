"""Prometheus metrics for `/metrics`, in a registry of their own (never the global one).

Pipeline counters are read from the pipeline's stats at scrape time (so they are exact even
when the web sink drops a result); the latency histogram and the per-label counter are fed
by the web sink with every result it handles. MQTT gauges exist only when MQTT is wired in.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..datatypes import FrameResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Inference on a Pi Zero 2 W runs ~150-400 ms, on a Pi 5 or a Coral a few ms.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)


class _PipelineCollector(Collector):
    """Reads PipelineStats-like counters (captured, processed, dropped, skipped, sink_dropped, fps)."""

    def __init__(self, stats: Callable[[], object]):
        self._stats = stats

    def collect(self) -> Iterable:
        stats = self._stats()
        if stats is None:
            return []
        # Read downstream first: a frame counts as captured before it is processed, so
        # captured >= processed holds in every scrape even while frames move on meanwhile.
        values = {attr: getattr(stats, attr, 0) for attr in ("processed", "skipped", "dropped", "captured")}
        out: List[Metric] = []
        for name, attr, doc in (
            ("frames_captured", "captured", "Frames read from the source."),
            (
                "frames_processed",
                "processed",
                "Frames that went through inference (or were skipped) and reached the sinks.",
            ),
            ("frames_dropped", "dropped", "Frames dropped because inference was busy (live sources)."),
            ("frames_skipped", "skipped", "Frames not inferred (motion gating or detection disabled)."),
        ):
            out.append(CounterMetricFamily(f"edgecam_{name}", doc, value=values[attr]))
        sink = CounterMetricFamily(
            "edgecam_sink_dropped", "Results a slow sink had to drop.", labels=["sink"]
        )
        for name, n in sorted(dict(getattr(stats, "sink_dropped", {})).items()):
            sink.add_metric([name], n)
        out.append(sink)
        fps = getattr(stats, "fps", None)
        out.append(
            GaugeMetricFamily(
                "edgecam_fps",
                "Processed frames per second (5 s window).",
                value=fps.rate() if fps is not None else 0.0,
            )
        )
        return out


class Metrics:
    """The preview server's metrics. `observe(result)` per frame; `render()` for `/metrics`."""

    def __init__(
        self,
        stats: Callable[[], object] = lambda: None,
        viewers: Callable[[], int] = lambda: 0,
        encoded: Callable[[], int] = lambda: 0,
        mqtt_connected: Optional[Callable[[], bool]] = None,
        spool_depth: Optional[Callable[[], int]] = None,
    ):
        self.registry = CollectorRegistry(auto_describe=True)
        # A scrape collects in registration order. The sink observes a result only after the
        # pipeline counted it processed, so reading the histogram before the pipeline's
        # counters keeps every scrape's inference count <= frames processed.
        self.inference = Histogram(
            "edgecam_inference_seconds",
            "Interpreter invoke time per inferred frame.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.detections = Counter(
            "edgecam_detections", "Detections reported, by label.", ["label"], registry=self.registry
        )
        self.registry.register(_PipelineCollector(stats))
        Gauge("edgecam_web_viewers", "Clients streaming /stream.mjpg.", registry=self.registry).set_function(
            viewers
        )
        _counter_function(
            "edgecam_web_jpeg_encoded",
            "Preview JPEGs encoded (once per frame for all viewers).",
            encoded,
            self.registry,
        )
        if mqtt_connected is not None:
            Gauge(
                "edgecam_mqtt_connected", "1 while the MQTT session is up.", registry=self.registry
            ).set_function(_or_nan(lambda: 1.0 if mqtt_connected() else 0.0))
        if spool_depth is not None:
            Gauge(
                "edgecam_mqtt_spool_depth",
                "Events stored on disk, not yet acknowledged by the broker.",
                registry=self.registry,
            ).set_function(_or_nan(spool_depth))

    def observe(self, result: FrameResult) -> None:
        """Count one processed result (skipped frames have no inference to measure)."""
        if result.skipped:
            return
        self.inference.observe(result.inference_ms / 1e3)
        for det in result.detections:
            self.detections.labels(det.label).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def _or_nan(read: Callable[[], float]) -> Callable[[], float]:
    # A scrape while MQTT shuts down (spool closed) reports NaN instead of failing.
    def safe() -> float:
        try:
            return float(read())
        except Exception:
            return float("nan")

    return safe


def _counter_function(name: str, doc: str, value: Callable[[], int], registry: CollectorRegistry) -> None:
    # prometheus_client counters cannot read a callable; a tiny collector can.
    class _C(Collector):
        def collect(self):
            return [CounterMetricFamily(name, doc, value=value())]

    registry.register(_C())
