"""Percentile math, the rolling latency window, throttling decode, thermal zones."""

from __future__ import annotations

import pytest

from edgecam.stats import (LatencyWindow, ResourceSampler, decode_throttled, parse_throttled,
                           percentile, soc_temperature, summarize)


def test_percentile_linear_interpolation_on_known_inputs():
    values = [1, 2, 3, 4, 5, 10, 100]
    # Positions (n-1)*q: q=50 -> rank 3 exactly; q=95 -> 5.7 between 10 and 100.
    assert percentile(values, 50) == 4
    assert percentile(values, 95) == pytest.approx(10 + 0.7 * 90)
    assert percentile(values, 99) == pytest.approx(10 + 0.94 * 90)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([7.5], 99) == 7.5


def test_percentile_ignores_input_order():
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile([10, 0], 25) == 2.5


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summarize_orders_and_counts():
    s = summarize(range(1, 101))
    assert s.count == 100 and s.max == 100 and s.mean == 50.5
    assert s.p50 == pytest.approx(50.5) and s.p95 == pytest.approx(95.05)
    assert s.p50 <= s.p95 <= s.p99 <= s.max
    assert summarize([]).count == 0
    assert set(s.to_dict()) == {"count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"}


def test_latency_window_is_bounded_and_keeps_newest():
    w = LatencyWindow(size=10)
    for i in range(1000):
        w.add(i)
    assert len(w) == 10 and w.total == 1000
    assert w.values() == list(range(990, 1000))
    assert w.summary().max == 999 and w.summary().p50 == pytest.approx(994.5)


def test_throttled_decode():
    assert parse_throttled("throttled=0x50005\n") == 0x50005
    assert parse_throttled("error") is None
    flags = decode_throttled(0x50005)
    on = {k for k, v in flags.items() if v}
    assert on == {"under_voltage", "throttled", "under_voltage_occurred", "throttled_occurred"}
    assert not any(decode_throttled(0).values())


def test_soc_temperature_reads_thermal_zones(tmp_path):
    for i, (kind, milli) in enumerate([("acpitz", "55000"), ("cpu-thermal", "48312")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert soc_temperature(str(tmp_path)) == pytest.approx(48.312)
    assert soc_temperature(str(tmp_path / "none")) is None


def test_resource_sampler_measures_this_process():
    sampler = ResourceSampler()
    sum(i * i for i in range(200_000))
    usage = sampler.sample()
    assert usage.cpu_s > 0 and usage.wall_s > 0 and usage.peak_rss_mb > 1
