"""scripts/bench_events.py: its metrics count what they claim on runs whose answer is known."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import scenes

_spec = importlib.util.spec_from_file_location(
    "bench_events", Path(__file__).resolve().parent.parent / "scripts" / "bench_events.py")
bench = sys.modules.setdefault("bench_events", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def street():
    scene = scenes.street(10)
    return scene, scene.truths()


def truth_run(truths, rename=lambda obj, i: f"t{obj}"):
    """A tracker that reports exactly the observable truth (ids renamed by `rename`)."""
    run = bench.Run("truth")
    for i, truth in enumerate(truths):
        shown = [(rename(t.id, i), t.label, tuple(map(float, t.box))) for t in truth if t.observable]
        for key, label, box in shown:
            if key not in {s[1] for s in run.starts}:
                run.starts.append((i, key, label, box))
        run.shown.append(shown)
    return run


def test_the_truth_itself_scores_perfectly(street):
    scene, truths = street
    run = truth_run(truths)
    assert bench.mot_row(truths, run) == {"mota": 1.0, "idf1": 1.0, "id_switches": 0, "fragmentations": 0}
    row = bench.user_row(truths, scene.labels(), run, scene.fps)
    assert row["objects"] == 3 and row["starts_per_object"] == 1.0 and row["missed"] == 0
    assert row["false_starts"] == 0 and row["wrong_label"] == 0 and row["start_delay_s"] == 0.0


def test_a_swap_of_ids_and_a_second_start_are_counted(street):
    scene, truths = street
    half = len(truths) // 2
    # The two people swap ids halfway; the car gets a new id (a second start) at the same time.
    swap = {2: 3, 3: 2}
    run = truth_run(truths, lambda obj, i: f"t{swap.get(obj, obj) if i >= half else obj}"
                    + ("b" if obj == 1 and i >= half else ""))
    mot = bench.mot_row(truths, run)
    assert mot["id_switches"] >= 3 and mot["idf1"] < 0.8
    row = bench.user_row(truths, scene.labels(), run, scene.fps)
    assert row["starts_per_object"] == pytest.approx(4 / 3, abs=0.01) and row["missed"] == 0


def test_an_object_never_shown_is_missed_and_a_start_on_nothing_is_false(street):
    scene, truths = street
    run = truth_run(truths)
    run.starts = [s for s in run.starts if s[1] != "t3"] + [(5, "ghost", "person", (0.0, 0.0, 20.0, 20.0))]
    row = bench.user_row(truths, scene.labels(), run, scene.fps)
    assert row["missed"] == 1 and row["false_starts"] == 1


def test_both_trackers_run_on_the_same_detections_and_cost_is_measured(street):
    scene, truths = street
    dets = bench.synthetic_detections(3, 40)
    runs = [track(scene, dets) for track in bench.TRACKERS.values()]
    assert [r.tracker for r in runs] == ["edgecam", "bytetrack"]
    assert all(len(r.shown) == 40 and r.starts for r in runs)
    cpu = bench.cpu_us_per_frame(10, 30, repeat=1)
    assert set(cpu) == {"edgecam", "bytetrack"} and all(v > 0 for v in cpu.values())
