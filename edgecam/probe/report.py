"""The `edgecam probe` report for people: a text table and a PNG plot of a ProbeReport."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Mapping

from ..errors import EdgecamError
from ..modelinfo import human
from .measure import STAGES, ProbeReport


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


def _region_cost(mode: str, runs, ms) -> str:
    if runs[0] == runs[1]:
        return f"{mode} {runs[0]} run(s) {ms[0]:.0f} ms"
    return f"{mode} {runs[0]}-{runs[1]} runs {ms[0]:.0f}-{ms[1]:.0f} ms"


def format_report(report: ProbeReport) -> str:
    """The human-readable probe report: per-result stage table, comparison, budget pick."""
    lines = [
        f"runtime: {report.runtime} | {platform.machine()}, {os.cpu_count()} cores",
        f"source: {report.source}",
        _health_line("before", report.health_before),
    ]
    for r in report.results:
        lines.append("")
        lines.append(
            f"{os.path.basename(r.model)}  threads={r.threads}  delegate={r.delegate}"
            f"  runs={r.runs} warmup={r.warmup}"
        )
        lines.append(f"  {'stage':<12}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  ms")
        rows = [(n, s) for n, s in r.stages.items() if r.kind == "detector"]
        rows.append(("raw invoke", r.raw_invoke))
        for name, s in rows:
            lines.append(f"  {name:<12}{_ms(s.p50)}{_ms(s.p95)}{_ms(s.p99)}{_ms(s.max)}")
        if r.skipped_stages:
            lines.append(f"  skipped: {', '.join(r.skipped_stages)} ({r.skip_reason})")
        if r.regions:
            lines.append(
                f"  [detect] regions at {r.frame_size[0]}x{r.frame_size[1]}, per frame: "
                + " | ".join(_region_cost(mode, r.regions[mode], ms) for mode, ms in r.region_ms().items())
            )
        pipe = f" | sequential pipeline {r.pipeline_fps:.1f} fps" if r.pipeline_fps is not None else ""
        lines.append(
            f"  raw invoke {r.raw_invoke_fps:.1f} fps{pipe}"
            f" | CPU {r.usage.cpu_percent:.0f} % | peak RSS {r.usage.peak_rss_mb:.0f} MB"
            f" | {human(r.macs)} Mult-Adds, {human(r.params)} params"
        )
    lines.append("")
    lines.append(_health_line("after", report.health_after))
    if len(report.results) > 1:
        lines.append("")
        lines.append("comparison (sorted by raw invoke p50):")
        lines.append(
            f"  {'model':<40}{'threads':>8}{'p50 ms':>9}{'p95 ms':>9}{'raw fps':>9}"
            f"{'pipe fps':>9}{'Mult-Adds':>11}{'params':>9}"
        )
        for r in sorted(report.results, key=lambda r: r.raw_invoke.p50):
            pipe = f"{r.pipeline_fps:.1f}" if r.pipeline_fps is not None else "-"
            lines.append(
                f"  {os.path.basename(r.model)[:39]:<40}{r.threads!s:>8}"
                f"{r.raw_invoke.p50:9.2f}{r.raw_invoke.p95:9.2f}{r.raw_invoke_fps:9.1f}"
                f"{pipe:>9}{human(r.macs):>11}{human(r.params):>9}"
            )
    if report.budget_ms is not None:
        best = report.budget_pick()
        lines.append("")
        if best is None:
            lines.append(f"budget {report.budget_ms:g} ms (raw invoke p95): no model fits")
        else:
            lines.append(
                f"budget {report.budget_ms:g} ms (raw invoke p95): most capable model "
                f"that fits: {best['name']} threads={best['threads']} "
                f"(p95 {best['raw_invoke']['p95_ms']:.2f} ms, {human(best['macs'])} "
                "Mult-Adds)"
            )
    return "\n".join(lines)


def write_plot(report: ProbeReport, path: str) -> None:
    """A PNG: per-stage p50 bars (p95 whiskers) per result, and raw invoke histograms."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        raise EdgecamError(
            "--plot needs matplotlib: run `pip install edgecam[plot]` (or `pip install matplotlib`)"
        ) from None
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
