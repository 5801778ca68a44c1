"""[track] require_motion: an object in view from the start that never moves (a rock the model
takes for a person) starts no event; one that walks in, or appears at a scene cut, does."""

from __future__ import annotations

import io
import json

import scenes
from conftest import COCO_LABELS, SSD_MODEL
from edgecam.app import run
from edgecam.config import from_mapping
from edgecam.datatypes import BBox, Detection, Frame, FrameResult
from edgecam.events import EventOptions, EventStage
from edgecam.tracker import Tracker, TrackerOptions


def starts(video, watch, **track):
    out = io.StringIO()
    config = from_mapping({"model": {"path": str(SSD_MODEL), "labels": str(COCO_LABELS), "threads": 2},
                           "source": {"uri": str(video)}, "detect": {"watch": watch},
                           "track": {"enabled": True, **track}})
    run(config, json_output=True, stdout=out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    return [e for e in lines if e["type"] == "event" and e["event"] == "start"]


def rock_scene():
    """A person standing still in view from the first frame to the last (the rock), and a dog
    that walks in from the left after a second."""
    rock = scenes.Actor(1, "person_grace", 170, ((0.0, 500, 300), (5.0, 500, 300)))
    dog = scenes.Actor(2, "dog_left", 220, ((1.0, -60, 472), (5.0, 200, 472)))
    return scenes.Scene("rock", 10, scenes.SIZE, (scenes.Shot(scenes.KITE_BG, 5.0, (rock, dog)),))


def test_the_rock_starts_no_event_the_dog_walking_in_does(tmp_path):
    video = rock_scene().write(tmp_path / "rock.avi")
    default = starts(video, ["person", "dog"])
    assert [s["label"] for s in default] == ["dog"], default
    still_too = starts(video, ["person", "dog"], require_motion=False)
    assert sorted(s["label"] for s in still_too) == ["dog", "person"], still_too


def test_what_appears_at_a_scene_cut_was_seen_moving(tmp_path):
    # The video: five still photos, 12 frames each. Nothing in them moves, but each cut
    # is motion over the whole frame: the rule starts what starts without it.
    video = scenes.photo_cut_scene().write(tmp_path / "photos.avi")
    watch = ["person", "dog", "car"]
    with_rule = [(s["label"], s["seq"]) for s in starts(video, watch)]
    without = [(s["label"], s["seq"]) for s in starts(video, watch, require_motion=False)]
    assert with_rule == without and {"dog", "car"} <= {label for label, _ in with_rule}, with_rule


def result(seq, boxes, motion=None):
    dets = tuple(Detection("person", 0, 0.8, b) for b in boxes)
    return FrameResult(Frame(seq, seq * 0.1, seq * 0.1, None), dets, 1.0, motion=motion)


def test_motion_on_a_tenth_of_the_box_counts_a_corner_does_not():
    box = BBox(0.4, 0.4, 0.6, 0.8)
    stage = EventStage(Tracker(TrackerOptions(min_hits=1, min_age=0.0)), EventOptions(require_motion=True))
    corner = (BBox(0.58, 0.4, 0.7, 0.5),)  # 2.5 % of the box
    assert [stage(result(i, [box], corner)).events for i in range(3)] == [(), (), ()]
    assert [e.kind for e in stage(result(3, [box], (BBox(0.4, 0.6, 0.6, 0.8),))).events] == ["start"]
    drifting = EventStage(Tracker(TrackerOptions(min_hits=1, min_age=0.0)), EventOptions(require_motion=True))
    events = [drifting(result(i, [BBox(0.4 + 0.012 * i, 0.4, 0.6 + 0.012 * i, 0.8)])).events for i in range(4)]
    assert [len(e) for e in events] == [0, 0, 1, 0]  # by frame 2 it moved more than 2 % of the frame
