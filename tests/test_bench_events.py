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
        run.shows(shown, {})
    return run


def test_the_truth_itself_scores_perfectly(street):
    scene, truths = street
    run = truth_run(truths)
    assert bench.mot_row(truths, run) == {"mota": 1.0, "idf1": 1.0, "idf1_record": 1.0, "id_switches": 0,
                                          "fragmentations": 0}
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


def test_the_record_holds_a_tracks_sightings_from_before_it_was_reported(street):
    # Every object reported only from its 5th observable frame on: live IDF1 pays for the
    # wait, the record (the frames before, once the track is reported) does not.
    _, truths = street
    run, frames = bench.Run("late"), {}
    for i, truth in enumerate(truths):
        shown, first = [], {}
        for t in (t for t in truth if t.observable):
            frames[t.id] = frames.get(t.id, 0) + 1
            box = tuple(map(float, t.box))
            if frames[t.id] < 5:
                run.sighted(t.id, i, box)
                continue
            shown.append((f"t{t.id}", t.label, box))
            if frames[t.id] == 5:
                first[f"t{t.id}"] = t.id
        run.shows(shown, first)
    mot = bench.mot_row(truths, run)
    assert mot["idf1"] < 0.98 and mot["idf1_record"] == 1.0, mot
    assert sum(map(len, run.record)) == sum(len([t for t in tr if t.observable]) for tr in truths)


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


# -- the goals, on a short form of the benchmark (the real detector, every fixture at 10 fps,
# the hardest one at 30 fps too, and the five-photo video) ---------------------------
SHORT = [("street", 10), ("pause_dropout", 10), ("scene_cut", 10), ("scene_cut", 30), ("photo_cut", 10)]


@pytest.fixture(scope="module")
def short_rows():
    detector = bench.load_detector(threads=2)
    rows = {}
    for name, fps in SHORT:
        scene = scenes.photo_cut_scene() if name == "photo_cut" else scenes.FIXTURES[name](fps)
        rows[f"{name}@{fps}"] = {r["tracker"]: r for r in bench.fixture_rows(scene, bench.detections_for(scene, detector.detect))}
    return rows


@pytest.mark.parametrize("fixture", [f"{n}@{f}" for n, f in SHORT])
def test_every_real_object_starts_once_and_none_is_missed(short_rows, fixture):
    ours = short_rows[fixture]["edgecam"]
    assert ours["starts_per_object"] <= 1.1 and ours["missed"] == 0, ours
    assert ours["false_starts"] == 0 and ours["wrong_label"] == 0, ours


@pytest.mark.parametrize("fixture", [f"{n}@{f}" for n, f in SHORT])
def test_identities_hold_at_least_as_well_as_bytetrack(short_rows, fixture):
    # Live, not on the photo video: its 1.2 s shots are a third spent confirming (min_age
    # 0.4 s), which costs live IDF1 there (0.80 vs 0.84); the record does not pay for it.
    ours, peer = short_rows[fixture]["edgecam"], short_rows[fixture]["bytetrack"]
    assert ours["idf1_record"] >= peer["idf1_record"], (ours, peer)
    if not fixture.startswith("photo_cut"):
        assert ours["idf1"] >= peer["idf1"], (ours, peer)
