"""The ground-truth scenes (tests/scenes.py): their objects are what the real detector finds, and
their truth says where each object is, frame by frame."""

from __future__ import annotations

import pytest

import scenes
from conftest import COCO_LABELS, SSD_MODEL
from edgecam.datatypes import BBox, Frame
from edgecam.detector import DetectOptions, Detector


@pytest.fixture(scope="module")
def detector():
    return Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2, options=DetectOptions(threshold=0.5))


def found(detector, image, truth) -> bool:
    w, h = image.shape[1], image.shape[0]
    box = BBox(truth.box[0] / w, truth.box[1] / h, truth.box[2] / w, truth.box[3] / h)
    dets = detector.detect(Frame(0, 0.0, 0.0, image)).detections
    return any(d.label == truth.label and d.bbox.iou(box) >= 0.5 for d in dets)


def sizes_used():
    """(sprite, height) of every actor of every fixture."""
    used = set()
    for make in scenes.FIXTURES.values():
        for shot in make(10).shots:
            used |= {(a.sprite, a.height) for a in shot.actors}
    return sorted(used)


@pytest.mark.parametrize("name,height", sizes_used())
def test_every_crop_is_detected_at_the_size_a_fixture_pastes_it(detector, name, height):
    assert height >= scenes.MIN_HEIGHT[name]
    for bg in (scenes.KITE_BG, scenes.PETS_BG):
        shot = scenes.Shot(bg, 0.1, (scenes.Actor(1, name, height, ((0.0, 320, 240 + height // 2),)),))
        scene = scenes.Scene("one", 10, scenes.SIZE, (shot,))
        image, truth = scene._render(0)
        assert len(truth) == 1 and truth[0].visible == 1.0
        assert found(detector, image, truth[0]), (name, height, bg)


def test_the_empty_backgrounds_hold_nothing_the_detector_finds(detector):
    for bg in (scenes.KITE_BG, scenes.PETS_BG):
        assert detector.detect(Frame(0, 0.0, 0.0, bg(*scenes.SIZE))).detections == ()


@pytest.mark.parametrize("fps", [10, 30])
def test_truth_follows_the_paths_entering_leaving_and_the_dropout(fps):
    scene = scenes.pause_dropout(fps)
    assert scene.n_frames == 8 * fps
    truths = scene.truths()
    dog = [next((t for t in ts if t.id == 2), None) for ts in truths]
    # The dog enters from the left edge: at first only part of its box is in the frame.
    first = next(i for i, t in enumerate(dog) if t is not None)
    assert first == 0 and dog[0].visible < 0.5 and dog[0].box[0] == 0
    # It pauses between 2 s and 4 s (the same box), and is hidden for exactly 5 frames from 5 s.
    assert dog[2 * fps + 1].box == dog[4 * fps - 1].box
    assert [i for i, t in enumerate(dog) if t and t.hidden] == list(range(5 * fps, 5 * fps + 5))
    # It has left by the end; the parked cat is there throughout.
    assert dog[-1] is None or dog[-1].visible < 0.5
    assert all(any(t.id == 1 and t.label == "cat" for t in ts) for ts in truths)


def test_an_object_passing_in_front_covers_the_one_behind():
    scene = scenes.street(10)
    seen, inside = {}, {}
    for ts in scene.truths():
        for t in ts:
            seen.setdefault(t.id, []).append(t.visible)
            if 0 < t.box[0] and t.box[2] < scene.size[0]:
                inside.setdefault(t.id, []).append(t.visible)
    assert min(seen[1]) < 0.5  # the parked car, while both people pass in front of it
    assert min(seen[3]) < 1.0  # the bust, when the walker passes in front of it
    assert set(inside[2]) == {1.0}  # the walker, in front of everything, is never covered
    assert scene.labels() == {1: "car", 2: "person", 3: "person"}


def test_a_scene_cut_replaces_every_object_at_once():
    scene = scenes.scene_cut(10)
    before, after = scene.truth(29), scene.truth(30)
    assert {t.id for t in before} == {1, 2} and {t.id for t in after} <= {3, 4, 5} and after


def test_the_photo_video_is_five_photos_of_twelve_frames(tmp_path):
    scene = scenes.photo_cut_scene()
    assert (scene.n_frames, scene.fps, scene.size) == (60, 10, (640, 480))
    labels = [sorted({t.label for t in scene.truth(i)}) for i in range(0, 60, 12)]
    assert labels == [["cat"], ["person"], ["person"], ["dog"], ["car"]]
    path = scene.write(tmp_path / "photos.avi")
    import media
    assert media.frame_count(path) == 60
