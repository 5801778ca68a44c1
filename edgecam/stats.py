"""Latency statistics and device health: percentiles, a rolling window, CPU/RSS, SoC temperature.

Pure helpers with no dependencies beyond the standard library, shared by `edgecam probe`, the
pipeline and the MQTT stats message.
"""

from __future__ import annotations

import glob
import math
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default).

    Raises ValueError for an empty sequence or q outside 0..100.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    data = sorted(values)
    if not data:
        raise ValueError("percentile of an empty sequence")
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


class Stopwatch:
    """Milliseconds per stage of one pass: `lap(stage)` ends the stage that began at the
    previous lap (or at creation) and adds it to `laps` (a stage lapped again, as for each
    crop of a frame, sums)."""

    __slots__ = ("_clock", "_last", "laps")

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._last = clock()
        self.laps: Dict[str, float] = {}

    def lap(self, stage: str) -> float:
        """Add the ms since the previous lap to `stage`; returns them."""
        now = self._clock()
        ms = (now - self._last) * 1e3
        self.laps[stage] = self.laps.get(stage, 0.0) + ms
        self._last = now
        return ms


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of a set of latencies in ms (all 0 when `count` is 0)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    def to_dict(self, ndigits: int = 3) -> Dict[str, float]:
        """JSON form: {"count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"}."""
        return {
            "count": self.count,
            "p50_ms": round(self.p50, ndigits),
            "p95_ms": round(self.p95, ndigits),
            "p99_ms": round(self.p99, ndigits),
            "max_ms": round(self.max, ndigits),
            "mean_ms": round(self.mean, ndigits),
        }


def summarize(values_ms: Iterable[float]) -> LatencySummary:
    """p50/p95/p99/max/mean of latencies in ms; an all-zero summary for no values."""
    data = sorted(float(v) for v in values_ms)
    if not data:
        return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return LatencySummary(
        len(data),
        percentile(data, 50),
        percentile(data, 95),
        percentile(data, 99),
        data[-1],
        sum(data) / len(data),
    )


class LatencyWindow:
    """The last `size` latencies (ms) of a stage; bounded, so memory stays flat over hours.

    Safe to `add` from one thread while another calls `summary`.
    """

    def __init__(self, size: int = 1000):
        if size < 1:
            raise ValueError("LatencyWindow size must be >= 1")
        self._values: deque = deque(maxlen=size)
        self._lock = threading.Lock()
        self._total = 0

    def add(self, ms: float) -> None:
        """Record one latency in milliseconds."""
        with self._lock:
            self._values.append(float(ms))
            self._total += 1

    @property
    def total(self) -> int:
        """How many values were ever added (not just those still in the window)."""
        return self._total

    def __len__(self) -> int:
        return len(self._values)

    def values(self) -> List[float]:
        """A copy of the values in the window, oldest first."""
        with self._lock:
            return list(self._values)

    def summary(self) -> LatencySummary:
        """Percentiles of the values in the window."""
        return summarize(self.values())


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass(frozen=True)
class ResourceUsage:
    """Process CPU and memory over an interval.

    `cpu_percent` is CPU time / wall time * 100, so a process keeping two cores busy reads 200.
    """

    wall_s: float
    cpu_s: float
    cpu_percent: float
    peak_rss_mb: float

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "cpu_percent": round(self.cpu_percent, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


class ResourceSampler:
    """Measures this process's CPU % and peak RSS from construction (or `reset`) to `sample`."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Start a new interval now."""
        # process_time() counts every thread at nanosecond resolution; os.times() counts in
        # 10 ms clock ticks, which read 0 % for a short probe on a fast machine.
        self._cpu0 = time.process_time()
        self._wall0 = time.monotonic()

    def sample(self) -> ResourceUsage:
        """Usage since the interval started (peak RSS is the process lifetime's peak)."""
        cpu = time.process_time() - self._cpu0
        wall = time.monotonic() - self._wall0
        return ResourceUsage(wall, cpu, 100.0 * cpu / wall if wall > 0 else 0.0, _peak_rss_mb())


# `vcgencmd get_throttled` bits (Raspberry Pi firmware documentation).
THROTTLE_BITS: Tuple[Tuple[int, str], ...] = (
    (0, "under_voltage"),
    (1, "arm_freq_capped"),
    (2, "throttled"),
    (3, "soft_temp_limit"),
    (16, "under_voltage_occurred"),
    (17, "arm_freq_capped_occurred"),
    (18, "throttled_occurred"),
    (19, "soft_temp_limit_occurred"),
)


def decode_throttled(value: int) -> Dict[str, bool]:
    """The named flags of a `get_throttled` bit field, e.g. 0x50005 -> under_voltage, throttled..."""
    return {name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS}


def parse_throttled(text: str) -> Optional[int]:
    """The bit field from `vcgencmd get_throttled` output ('throttled=0x50005'), None if absent."""
    _, sep, value = text.strip().partition("throttled=")
    if not sep:
        return None
    try:
        return int(value.split()[0], 0)
    except (ValueError, IndexError):
        return None


def read_throttled(timeout: float = 2.0, vcgencmd: Optional[str] = None) -> Optional[int]:
    """The Pi's throttling bit field via `vcgencmd get_throttled` (`vcgencmd`: the tool's path,
    else found on PATH); None when not on a Pi or when the tool gives no answer."""
    exe = vcgencmd or shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "get_throttled"], capture_output=True, text=True, timeout=timeout, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_throttled(out)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def soc_temperature(thermal_root: str = "/sys/class/thermal") -> Optional[float]:
    """The SoC temperature in °C from the kernel's thermal zones, None when none is readable.

    Prefers the zone whose type names the CPU/SoC (the Pi's is `cpu-thermal`), else the hottest.
    """
    readings = []
    for zone in sorted(glob.glob(os.path.join(thermal_root, "thermal_zone*"))):
        raw = _read(os.path.join(zone, "temp"))
        try:
            milli = int(raw) if raw is not None else None
        except ValueError:
            milli = None
        if milli is None:
            continue
        kind = (_read(os.path.join(zone, "type")) or "").lower()
        readings.append((any(k in kind for k in ("cpu", "soc", "x86_pkg")), milli / 1000.0))
    if not readings:
        return None
    preferred = [t for is_cpu, t in readings if is_cpu]
    return preferred[0] if preferred else max(t for _, t in readings)


def device_health(thermal_root: str = "/sys/class/thermal") -> dict:
    """{"soc_temp_c": float|None, "throttled": hex str|None, "throttle_flags": {..}|None}."""
    bits = read_throttled()
    return {
        "soc_temp_c": soc_temperature(thermal_root),
        "throttled": hex(bits) if bits is not None else None,
        "throttle_flags": decode_throttled(bits) if bits is not None else None,
    }


class RateMeter:
    """Events per second over a sliding time window (for the fps overlay and stats)."""

    def __init__(self, horizon: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._times: Deque[float] = deque()
        self._horizon, self._clock = horizon, clock
        self._lock = threading.Lock()

    def tick(self) -> None:
        """Count one event now."""
        now = self._clock()
        with self._lock:
            self._times.append(now)
            while self._times and now - self._times[0] > self._horizon:
                self._times.popleft()

    def rate(self) -> float:
        """Events per second over the window."""
        with self._lock:
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0


@dataclass
class PipelineStats:
    """Counters and latency windows, read by the overlay, MQTT stats, the watchdog and tests."""

    captured: int = 0
    processed: int = 0
    skipped: int = 0
    dropped: int = 0
    invokes: int = 0  # model runs: one per inferred frame, plus one per crop (edgecam.regions)
    sink_dropped: Dict[str, int] = field(default_factory=dict)
    inference_ms: LatencyWindow = field(default_factory=LatencyWindow)
    frame_age_ms: LatencyWindow = field(default_factory=LatencyWindow)
    end_to_end_ms: LatencyWindow = field(default_factory=LatencyWindow)
    fps: RateMeter = field(default_factory=RateMeter)
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> "RunSummary":
        """The counters and latencies now (for the log, systemd's status, the preview)."""
        inference, e2e = self.inference_ms.summary(), self.end_to_end_ms.summary()
        return RunSummary(
            captured=self.captured,
            processed=self.processed,
            dropped=self.dropped,
            skipped=self.skipped,
            invokes=self.invokes,
            sink_dropped=dict(self.sink_dropped),
            fps=round(self.fps.rate(), 2),
            inference_p50_ms=round(inference.p50, 2),
            inference_p95_ms=round(inference.p95, 2),
            end_to_end_p50_ms=round(e2e.p50, 2),
            uptime_s=round(time.monotonic() - self.started, 1),
        )


@dataclass
class GateStats:
    """What the motion gate decided so far (edgecam.motion)."""

    frames: int = 0
    inferred: int = 0
    skipped: int = 0
    motion: int = 0
    tracking: int = 0
    keepalive: int = 0


@dataclass(frozen=True)
class EventCounts:
    """Tracks the event stage started and ended in a run."""

    started: int
    ended: int


@dataclass(frozen=True)
class ClipCounts:
    """Event clips written and failed in a run (edgecam.clips)."""

    written: int
    failed: int


@dataclass(frozen=True)
class RunSummary:
    """What a run did: PipelineStats' counters and latencies at one moment and, at the end of
    `app.run`, what the motion gate decided and how many events the event stage made."""

    captured: int
    processed: int
    dropped: int
    skipped: int
    invokes: int
    sink_dropped: Dict[str, int]
    fps: float
    inference_p50_ms: float
    inference_p95_ms: float
    end_to_end_p50_ms: float
    uptime_s: float
    motion: Optional[GateStats] = None
    events: Optional[EventCounts] = None
    clips: Optional[ClipCounts] = None

    def line(self) -> str:
        """The one-line human summary (`edgecam run`'s last line, the periodic log line)."""
        return (
            f"processed {self.processed} frame(s), dropped {self.dropped}, "
            f"inference p50 {self.inference_p50_ms} ms, {self.fps} fps"
        )
