"""Detection at a distance (edgecam.regions): crops planned around motion, tracked objects or a
grid, their boxes mapped back to the frame and merged; on the real model, a small object the
whole frame misses is found in its crop, where it is."""

from __future__ import annotations

import subprocess
import time

import cv2
import numpy as np
import pytest

from edgecam.datatypes import BBox, Detection, Frame
from edgecam.detector import DetectOptions, Detector, timed_detect
from edgecam.regions import (RegionPlan, Region, from_region, full_region, min_side, plan_motion,
                             plan_tiles, region_around, region_for_motion, suppress_duplicates)

from conftest import COCO_LABELS, IMAGES, SSD_MODEL

W, H = 1280, 720


def det(label, x1, y1, x2, y2, score=0.8, class_id=None):
    return Detection(label, {"person": 0, "car": 2, "dog": 17}.get(label, 1) if class_id is None else class_id,
                     score, BBox(x1, y1, x2, y2))


def test_a_region_maps_its_boxes_into_the_frame_and_crops_the_same_pixels():
    r = Region(320, 180, 620, 480, W, H)
    assert r.box == BBox(0.25, 0.25, 620 / W, 480 / H)
    assert r.to_frame(BBox(0.0, 0.0, 1.0, 1.0)).as_list(9) == r.box.as_list(9)
    inner = r.to_frame(BBox(0.5, 0.5, 1.0, 1.0))
    assert inner.to_pixels(W, H) == (470, 330, 620, 480)
    image = np.arange(H * W * 3, dtype=np.uint32).reshape(H, W, 3)
    np.testing.assert_array_equal(r.crop(image), image[180:480, 320:620])
    assert full_region(W, H).is_full and not r.is_full


def test_a_box_cut_by_an_inner_edge_of_its_crop_is_dropped_one_on_the_frame_edge_is_kept():
    middle, corner = Region(320, 180, 620, 480, W, H), Region(0, 0, 300, 300, W, H)
    cut = det("person", 0.0, 0.3, 0.2, 0.6)  # at the crop's left edge
    whole = det("person", 0.3, 0.3, 0.6, 0.6)
    assert [d.bbox for d in from_region(middle, [cut, whole])] == [middle.to_frame(whole.bbox)]
    assert len(from_region(corner, [cut, whole])) == 2  # that left edge is the frame's
    assert from_region(full_region(W, H), [cut]) == (cut,)


def test_a_crop_is_centred_on_its_object_two_and_a_half_times_its_size_inside_the_frame():
    smallest = min_side((300, 300))
    assert smallest == 150  # enlarged at most 2x
    person = BBox(600 / W, 300 / H, 630 / W, 380 / H)  # 30 x 80 px
    r = region_around(person, W, H, smallest)
    assert r.size == (200, 200)
    assert abs((r.x1 + r.x2) / 2 - 615) <= 1 and abs((r.y1 + r.y2) / 2 - 340) <= 1
    tiny = region_around(BBox(0.99, 0.99, 1.0, 1.0), W, H, smallest)  # in the corner
    assert (tiny.size, tiny.x2, tiny.y2) == ((150, 150), W, H)
    huge = region_around(BBox(0.1, 0.1, 0.9, 0.9), W, H, smallest)
    assert huge.size == (H, H) and 0 <= huge.x1 and huge.x2 <= W


def test_motion_plan_due_objects_first_motion_they_explain_adds_none_large_left_to_the_frame():
    a = BBox(0.10, 0.10, 0.13, 0.20)
    near_a = BBox(0.11, 0.12, 0.12, 0.18)  # inside a's crop
    b = BBox(0.70, 0.60, 0.72, 0.70)
    large = BBox(0.20, 0.10, 0.60, 0.90)  # its crop would be the frame's height: the full pass
    plan = plan_motion(W, H, (300, 300), tracked=[(a, True)], moving=[near_a, large, b], max_regions=4)
    assert plan == (region_around(a, W, H, 150), region_for_motion(b, W, H, 150))
    assert len(plan_motion(W, H, (300, 300), [(a, True)], [b], max_regions=1)) == 1
    # An object found last frame is not due: no crop, and its own motion makes none either.
    assert plan_motion(W, H, (300, 300), [(a, False)], [near_a, b], 4) == (region_for_motion(b, W, H, 150),)
    assert plan_motion(W, H, (300, 300), [], [BBox(0.5, 0.5, 0.5, 0.6)], 4) == ()  # empty box


def test_more_motion_than_crops_takes_turns():
    blobs = [BBox(0.1 + 0.3 * i, 0.5, 0.13 + 0.3 * i, 0.6) for i in range(3)]
    looked = {plan_motion(W, H, (300, 300), [], blobs, 1, turn)[0] for turn in range(3)}
    assert looked == {region_for_motion(b, W, H, 150) for b in blobs}
    assert len(plan_motion(W, H, (300, 300), [], blobs, 4, 7)) == 3  # room for all: no turns


def test_a_crop_for_motion_follows_the_blob_across_and_holds_its_trail():
    trail = BBox(150 / W, 136 / H, 305 / W, 208 / H)  # a 68 x 50 cat and 90 px of trail
    r = region_for_motion(trail, W, H, 150)
    assert r.size[0] == round(1.2 * 155)  # 1.2 x its length, > 2.5 x its 72 px height; not 2.5 x 155
    assert r.box.intersect(trail).area == pytest.approx(trail.area)
    small = BBox(100 / W, 100 / H, 180 / W, 170 / H)
    assert region_for_motion(small, W, H, 150).size == (175, 175)  # 2.5 x its 70 px height


def test_tiles_cover_the_frame_overlapping_and_none_when_one_tile_is_the_frame():
    tiles = plan_tiles(W, H, 300)
    assert {t.size for t in tiles} == {(300, 300)}
    xs, ys = sorted({t.x1 for t in tiles}), sorted({t.y1 for t in tiles})
    assert xs[0] == 0 and ys[0] == 0 and xs[-1] + 300 == W and ys[-1] + 300 == H
    assert all(b - a <= 300 * 0.8 for a, b in zip(xs, xs[1:]))  # >= 20 % overlap
    assert all(b - a <= 300 * 0.8 for a, b in zip(ys, ys[1:]))
    covered = np.zeros((H, W), bool)
    for t in tiles:
        covered[t.y1:t.y2, t.x1:t.x2] = True
    assert covered.all()
    assert plan_tiles(256, 256, 300) == ()
    assert RegionPlan("full", (300, 300))(W, H, [BBox(0.1, 0.1, 0.2, 0.2)]) == ()
    assert RegionPlan("tiles", (300, 300))(W, H) == tiles


def test_duplicates_of_one_object_are_suppressed_other_objects_and_labels_kept():
    person = det("person", 0.10, 0.10, 0.30, 0.60, 0.7)
    again = det("person", 0.11, 0.12, 0.31, 0.62, 0.9)  # IoU ~0.85: the same person
    beside = det("person", 0.40, 0.10, 0.60, 0.60, 0.6)
    dog = det("dog", 0.11, 0.12, 0.31, 0.62, 0.5)  # same place, another label
    part = det("person", 0.12, 0.12, 0.28, 0.35, 0.65)  # wholly inside the person, IoU 0.36
    out = suppress_duplicates([person, again, beside, dog, part])
    assert out == (again, beside, dog)  # best first
    # A part that scores better than the whole may be an object of its own: kept.
    assert suppress_duplicates([again, det("person", 0.12, 0.12, 0.28, 0.35, 0.95)])[0].score == 0.95
    # SSD's box around two cats crossing holds both: it is no reason to drop either.
    left, right = det("cat", 0.30, 0.28, 0.60, 0.65, 0.67), det("cat", 0.35, 0.60, 0.66, 0.88, 0.64)
    group = det("cat", 0.29, 0.22, 0.67, 0.89, 0.74)
    assert set(suppress_duplicates([left, right, group])) == {left, right, group}
    # Boxes of two passes on one object overlap by more than SSD's own NMS lets through.
    assert suppress_duplicates([person, det("person", 0.10, 0.11, 0.30, 0.58, 0.6)]) == (person,)
    near_car = det("car", 0.0, 0.3, 1.0, 1.0)
    far_car = det("car", 0.45, 0.35, 0.50, 0.40)  # inside it, but 0.4 % of its size: behind it
    assert set(suppress_duplicates([near_car, far_car])) == {near_car, far_car}
    assert suppress_duplicates([]) == () and suppress_duplicates([person]) == (person,)


@pytest.fixture(scope="module")
def detector():
    return Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2,
                         options=DetectOptions(threshold=0.5))


def small_dog_scene():
    """The left dog of pets.jpg, 70 px tall, on a blurred 1280x720 scene; and where it is."""
    pets = cv2.imread(str(IMAGES / "pets.jpg"))[49:295, 121:250]
    dog = cv2.resize(pets, None, fx=70 / pets.shape[0], fy=70 / pets.shape[0],
                     interpolation=cv2.INTER_AREA)
    frame = cv2.GaussianBlur(cv2.resize(cv2.imread(str(IMAGES / "kite_and_cold.jpg")), (W, H)),
                             (0, 0), 25)
    x, y = 700, 400
    frame[y:y + dog.shape[0], x:x + dog.shape[1]] = dog
    return frame, BBox(x / W, y / H, (x + dog.shape[1]) / W, (y + dog.shape[0]) / H)


def test_a_small_dog_the_whole_frame_misses_is_found_in_its_crop_where_it_is(detector):
    image, where = small_dog_scene()
    frame = Frame(0, time.time(), time.monotonic(), image)
    whole = timed_detect(detector, frame)
    assert not [d for d in whole.detections if d.label == "dog"] and whole.invokes == 1
    crops = RegionPlan("motion", detector.input_size, tracked=lambda: [(where, True)])(W, H)
    assert len(crops) == 1 and crops[0].size[0] < 300, crops
    found = timed_detect(detector, frame, regions=crops)
    dogs = [d for d in found.detections if d.label == "dog"]
    assert len(dogs) == 1 and dogs[0].bbox.iou(where) > 0.6, (dogs, where)
    assert found.invokes == 2 and found.inference_ms > whole.inference_ms * 0.5
    tiled = timed_detect(detector, frame, regions=plan_tiles(W, H, 150))
    assert [d.label for d in tiled.detections].count("dog") == 1  # one box where tiles overlap


def run(edgecam_cmd, env, *args):
    return subprocess.run([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
                           *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_bad_regions_value_and_crops_on_the_imx500_are_one_line_errors(edgecam_cmd, cli_env, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[detect]\nregions = "everywhere"\n')
    bad = run(edgecam_cmd, cli_env, "--config", str(config), "--source", str(IMAGES / "pets.jpg"))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "[detect] regions" in bad.stderr and "full, motion, tiles" in bad.stderr
    sensor = run(edgecam_cmd, cli_env, "--detector", "imx500", "--regions", "motion",
                 "--source", str(IMAGES / "pets.jpg"))
    assert sensor.returncode == 2 and sensor.stderr.strip().count("\n") == 0, sensor.stderr
    assert "IMX500" in sensor.stderr and "regions = full" in sensor.stderr


def test_tiles_find_far_people_the_whole_frame_misses(edgecam_cmd, cli_env):
    import json
    people = {}
    for mode in ("full", "tiles"):
        out = run(edgecam_cmd, cli_env, "--source", str(IMAGES / "kite_and_cold.jpg"), "--regions", mode,
                  "--json")
        assert out.returncode == 0, out.stderr
        frame = json.loads(out.stdout.splitlines()[0])
        people[mode] = [d for d in frame["detections"] if d["label"] == "person"]
    assert len(people["tiles"]) > len(people["full"]) >= 3, people


def test_the_probe_says_what_each_mode_costs_at_the_frame_size():
    from edgecam.probe.measure import run_probe
    from edgecam.probe.report import format_report
    from edgecam.regions import runs_per_frame
    assert runs_per_frame(W, H, (300, 300)) == {"full": (1, 1), "motion": (1, 5), "tiles": (19, 19)}
    assert runs_per_frame(256, 256, (300, 300))["tiles"] == (1, 1)
    report = run_probe([str(SSD_MODEL)], threads=(1,), runs=2, warmup=0,
                       labels=str(COCO_LABELS), source=str(IMAGES / "cat_720p.jpg"))
    regions = report.to_dict()["results"][0]["regions"]
    assert regions["frame"] == [W, H] and regions["tiles"]["runs_per_frame"] == [19, 19]
    full_ms = regions["full"]["ms_per_frame"][0]
    assert regions["tiles"]["ms_per_frame"][0] == pytest.approx(19 * full_ms, rel=0.01)
    assert "[detect] regions at 1280x720, per frame: full 1 run(s)" in format_report(report)
