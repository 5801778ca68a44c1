"""Per-label events, counts and occupancy as a pipeline processor (edgecam.label_events), and
the processor stage that runs it with the one pause timer (edgecam.processing). Pure: the
clock is an argument, nothing sleeps."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from edgecam.datatypes import (BBox, CountChange, Detection, EndReason, Event, Frame,
                               FrameResult, FrameState, OccupancyChange)
from edgecam.label_events import LabelDebounce, LabelEventOptions, LabelEvents, Occupancy
from edgecam.processing import ProcessorStage
from edgecam.settings import LiveSettings

PERSON = Detection("person", 0, 0.72, BBox(0.1, 0.05, 0.9, 0.98))
DOG = Detection("dog", 17, 0.8, BBox(0.5, 0.5, 0.9, 0.9))
IMAGE = np.zeros((48, 64, 3), np.uint8)


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def result(seq, *detections, skipped=False):
    frame = Frame(seq, 1_700_000_000.0 + seq, 100.0 + seq, IMAGE, "test")
    return FrameResult(frame, tuple(detections), 5.0,
                       state=FrameState.SKIPPED if skipped else FrameState.INFERRED)


def test_event_debounce_start_and_end():
    ids = iter(["e1", "e2"])
    t = LabelDebounce("person", start_frames=3, end_frames=2, new_id=lambda: next(ids))
    frames = [0.6, None, 0.6, 0.7, 0.9, None, 0.8, None, None, 0.5]
    out = [t.update(s, float(i), seq=i) for i, s in enumerate(frames)]
    kinds = [(i, e.kind, e.id, e.top_score) for i, evs in enumerate(out) for e in evs]
    assert kinds == [(4, "start", "e1", 0.9), (8, "end", "e1", 0.9)]
    end = out[8][0]
    assert (end.first_seen, end.last_seen, end.duration, end.reason, end.seq) == (2.0, 8.0, 6.0, "absent", 8)
    assert not end.tracked and end.box is None


def test_occupancy_hysteresis_and_unknown_start():
    occ = Occupancy(off_delay=5.0, started=100.0)
    assert occ.update(False, False, 101.0) is None  # unknown until the delay has passed
    assert occ.update(False, False, 105.5) is False
    occ2 = Occupancy(off_delay=5.0, started=100.0)
    assert occ2.update(True, True, 100.5) is True
    assert occ2.update(False, False, 103.0) is None  # absent but within the delay: stays on
    assert occ2.update(False, True, 104.0) is None  # brief sighting renews it
    assert occ2.update(False, False, 108.9) is None
    assert occ2.update(False, False, 109.1) is False
    occ3 = Occupancy(off_delay=5.0, started=100.0)
    assert occ3.update(True, True, 100.5) is True
    assert occ3.clear() is False and occ3.clear() is None, "off at once, reported once"
    assert Occupancy(5.0, 100.0).clear() is False, "unknown is cleared too"


def test_label_events_make_counts_events_and_occupancy_in_frame_order():
    clock = Clock()
    ids = iter(["p1", "p2"])
    stage = LabelEvents(LabelEventOptions(("person", "dog"), start_frames=2, end_frames=2,
                                          off_delay=1.0), clock, new_id=lambda: next(ids))
    out = []
    for seq, dets in enumerate([(PERSON,), (PERSON, PERSON), (), ()]):
        clock.now += 0.1
        out.append(stage(result(seq, *dets)).events)
    assert out[0] == (CountChange("person", 1, 1_700_000_000.0), CountChange("dog", 0, 1_700_000_000.0))
    start = [e for e in out[1] if isinstance(e, Event)]
    assert [(e.kind, e.id, e.label, e.first_seen, e.seq) for e in start] == \
        [("start", "p1", "person", 1_700_000_000.0, 1)]
    assert OccupancyChange("person", True) in out[1] and CountChange("person", 2, 1_700_000_001.0) in out[1]
    end = [e for e in out[3] if isinstance(e, Event)]
    assert [(e.kind, e.reason, e.last_seen, e.duration) for e in end] == [("end", "absent", 1_700_000_003.0, 3.0)]
    assert not any(isinstance(e, OccupancyChange) for e in out[3]), "on until the off delay"
    # Skipped frames (and ticks) only let time pass.
    clock.now += 0.5
    assert stage(result(4, skipped=True)).events == ()
    clock.now += 0.6
    assert stage(result(5, skipped=True)).events == (OccupancyChange("person", False),
                                                     OccupancyChange("dog", False))
    assert stage.tick() == []


def test_with_the_tracker_only_counts_and_occupancy_are_made():
    stage = LabelEvents(LabelEventOptions(("person",), 1, 1, 1.0, events=False), Clock())
    events = stage(result(0, PERSON)).events
    assert events == (CountChange("person", 1, 1_700_000_000.0), OccupancyChange("person", True))
    assert stage.finish(0, "shutdown") == [OccupancyChange("person", False)]


def test_finish_ends_what_is_open_and_turns_occupancy_off():
    stage = LabelEvents(LabelEventOptions(("person",), 1, 5, 60.0), Clock(), new_id=lambda: "p")
    stage(result(0, PERSON))
    before = time.time()
    ended, off = stage.finish(0, EndReason.SHUTDOWN)
    assert (ended.kind, ended.id, ended.reason, ended.seq) == ("end", "p", "shutdown", None)
    assert ended.last_seen >= round(before, 3) and off == OccupancyChange("person", False)
    assert stage.finish(0, "shutdown") == [], "nothing is open any more"
    # A long pause also reads every count as 0.
    stage(result(1, PERSON))
    paused = stage.finish(1, EndReason.PAUSED)
    assert [type(e).__name__ for e in paused] == ["Event", "CountChange", "OccupancyChange"]
    assert paused[1].count == 0


def test_the_stage_times_a_pause_once_and_lets_time_pass_without_frames():
    clock, settings, carried = Clock(), LiveSettings(0.5), []
    labels = LabelEvents(LabelEventOptions(("person",), 1, 5, 1.0), clock, new_id=lambda: "p")
    stage = ProcessorStage([labels], carried.append, settings, pause_ends_after=1.0, clock=clock)
    stage.idle()
    assert carried == [], "nothing to carry events on before the first frame"
    first = stage.frame(result(0, PERSON))
    assert OccupancyChange("person", True) in first.events
    settings.update(enabled=False)
    clock.now += 0.5
    stage.frame(result(1, skipped=True))  # the pause is timed from here
    clock.now += 0.9
    stage.idle()
    assert carried == [], "a pause shorter than the delay changes nothing"
    clock.now += 0.2
    stage.idle()
    (carrier,) = carried
    assert carrier.state is FrameState.FLUSH and carrier.frame.seq == 1
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in carrier.events] == \
        [("Event", "paused"), ("CountChange", None), ("OccupancyChange", None)]
    clock.now += 5
    stage.idle()
    stage.frame(result(2, skipped=True))
    assert len(carried) == 1, "a pause ends things once"
    settings.update(enabled=True)
    again = stage.frame(result(3, PERSON))
    assert [e.kind for e in again.events if isinstance(e, Event)] == ["start"]


def test_idle_ticks_turn_occupancy_off_after_the_delay():
    clock, carried = Clock(), []
    labels = LabelEvents(LabelEventOptions(("person",), 1, 1, 1.0), clock)
    stage = ProcessorStage([labels], carried.append, clock=clock)
    stage.frame(result(0, PERSON))
    stage.frame(result(1))
    clock.now += 0.9
    stage.idle()
    assert carried == []
    clock.now += 0.2
    stage.idle()
    assert [c.events for c in carried] == [(OccupancyChange("person", False),)]


def test_a_label_event_line_has_no_box_and_a_tracked_one_keeps_its_fields():
    label = Event("start", "p", "person", 0.7, 0.7, 1.0, 1.0, 0.0, seq=3)
    assert label.to_json() == {"type": "event", "event": "start", "id": "p", "label": "person",
                               "score": 0.7, "top_score": 0.7, "first_seen": 1.0,
                               "last_seen": 1.0, "duration": 0.0, "reason": None, "seq": 3}
    tracked = dataclasses.replace(label, box=(0.1, 0.2, 0.3, 0.4), zones=("door",))
    assert list(tracked.to_json()) == ["type", "event", "id", "label", "score", "top_score",
                                       "first_seen", "last_seen", "duration", "box", "zones",
                                       "entered_zones", "reason", "seq"]


def test_the_events_keys_are_still_read_under_their_old_mqtt_names(caplog):
    from edgecam.config import from_mapping
    config = from_mapping({"mqtt": {"occupancy_off_delay": 1.0, "event_start_frames": 3},
                           "events": {"start_frames": 4}})
    assert (config.events.occupancy_off_delay, config.events.start_frames) == (1.0, 4), \
        "[events] wins over the old name"
    assert "config [mqtt] occupancy_off_delay is now [events] occupancy_off_delay" in caplog.text
    assert from_mapping({"events": {"end_frames": 7}}).events.end_frames == 7
