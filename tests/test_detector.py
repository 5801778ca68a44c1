"""The detector on the real SSD model: same numbers as the raw interpreter, exact box mapping."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edgecam.datatypes import BBox, Frame
from edgecam.detector import (DetectOptions, Detector, OutputMap, fit_image, fit_transform,
                              output_roles)
from edgecam.errors import EdgecamError
from edgecam.runtime import find_runtime
from edgecam.runtime import input_converter as _input_converter
from edgecam.tflite_graph import read_graph

from conftest import CLASSIFIER_025, COCO_LABELS, COCO_LABELS_90, EDGETPU_MODEL, IMAGES, SSD_MODEL


@pytest.fixture(scope="module")
def detector():
    return Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)


def frame_of(name):
    image = cv2.imread(str(IMAGES / name))
    return Frame(0, time.time(), time.monotonic(), image, name)


def test_outputs_equal_the_raw_interpreter_for_the_same_input(detector):
    tensor, _ = detector.preprocess(cv2.imread(str(IMAGES / "pets.jpg")))
    ours = detector.invoke(tensor)
    raw = find_runtime().interpreter_class(model_path=str(SSD_MODEL), num_threads=2)
    raw.allocate_tensors()
    raw.set_tensor(raw.get_input_details()[0]["index"], tensor)
    raw.invoke()
    theirs = [raw.get_tensor(d["index"]) for d in raw.get_output_details()]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    boxes, classes, scores, n = detector.split_outputs(ours)
    np.testing.assert_array_equal(boxes, theirs[0][0])
    np.testing.assert_array_equal(classes, theirs[1][0])
    np.testing.assert_array_equal(scores, theirs[2][0])
    assert n == int(theirs[3][0])


def test_output_roles_are_read_from_the_graph_once_whatever_the_order(detector):
    # The graph's post-process op says which tensor holds the classes and which the scores;
    # a TF2-style order (scores, boxes, count, classes) is mapped at load, not guessed from
    # each frame's values.
    tensor, _ = detector.preprocess(cv2.imread(str(IMAGES / "pets.jpg")))
    boxes, classes, scores, count = detector.invoke(tensor)
    tf1_details = detector.interpreter.get_output_details()
    graph = read_graph(SSD_MODEL.read_bytes())
    assert detector.output_map == output_roles(tf1_details, graph) == OutputMap(0, 1, 2, 3)
    order = (2, 0, 3, 1)
    tf2_details = [tf1_details[i] for i in order]
    roles = output_roles(tf2_details, graph)
    assert roles == OutputMap(boxes=1, classes=3, scores=0, count=2)
    tf2 = Detector(detector.interpreter, detector.labels, detector.options, detector.runtime,
                   "x", 2, None, outputs=roles)
    got_boxes, got_classes, got_scores, n = tf2.split_outputs((scores, boxes, count, classes))
    np.testing.assert_array_equal(got_boxes, boxes[0])
    np.testing.assert_array_equal(got_classes, classes[0])
    np.testing.assert_array_equal(got_scores, scores[0])
    assert n == int(count[0]) == 10
    # Without the graph the shapes find boxes and count, and the pair is taken in TF1 order.
    assert output_roles(tf2_details) == OutputMap(boxes=1, classes=0, scores=3, count=2)
    with pytest.raises(ValueError, match="not boxes/classes/scores/count"):
        output_roles(tf1_details[:3], graph)


@pytest.mark.parametrize("name,expected", [
    ("grace_hopper.bmp", {"person": 1, "tie": 1}),
    ("cat_720p.jpg", {"cat": 1}),
    ("pets.jpg", {"dog": 2}),
    ("traffic.bmp", {"car": 2}),
    ("kite_and_cold.jpg", {"person": 3, "kite": 3}),
])
def test_each_shared_image_yields_its_labels(detector, name, expected):
    result = detector.detect(frame_of(name))
    labels = [d.label for d in result.detections]
    for label, at_least in expected.items():
        assert labels.count(label) >= at_least, (name, labels)
    assert set(result.timings) == {"preprocess", "invoke", "postprocess"}


def test_both_label_styles_name_classes_the_same():
    a = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1)
    b = Detector.load(str(SSD_MODEL), str(COCO_LABELS_90), threads=1)
    assert a.labels == b.labels
    assert [d.label for d in b.detect(frame_of("pets.jpg")).detections] == ["dog", "dog"]


def test_id_label_pairs_name_classes_as_the_plain_styles(tmp_path):
    # Coral's style: only the real classes, each with its id (the `n/a` gaps left out).
    plain = COCO_LABELS_90.read_text().splitlines()
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{i}  {name}\n" for i, name in enumerate(plain) if name != "n/a"))
    assert len(pairs.read_text().splitlines()) == 80
    loaded = Detector.load(str(SSD_MODEL), str(pairs), threads=1)
    assert loaded.labels == Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1).labels


@pytest.mark.parametrize("style", ["plain", "pairs"])
def test_a_label_file_that_stops_short_of_the_models_classes_is_refused(tmp_path, style):
    names = ["person", "bicycle", "car"]
    short = tmp_path / "three.txt"
    short.write_text("".join(f"{i} {n}\n" if style == "pairs" else f"{n}\n"
                             for i, n in enumerate(names)))
    with pytest.raises(EdgecamError, match=f"label file {short} has 3 labels .ids up to 2. but "
                                           "the model has 90 classes, so classes past id 2"):
        Detector.load(str(SSD_MODEL), str(short), threads=1)


def test_options_filter_by_class_area_and_count(detector):
    frame = frame_of("kite_and_cold.jpg")
    everything = detector.detect(frame).detections
    only_kites = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1,
                               options=DetectOptions(classes=("kite",), max_detections=2))
    kites = only_kites.detect(frame).detections
    assert [d.label for d in kites] == ["kite", "kite"]
    assert kites[0].score >= kites[1].score
    big = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1,
                        options=DetectOptions(min_area=0.002))
    assert all(d.bbox.area >= 0.002 for d in big.detect(frame).detections)
    assert len(big.detect(frame).detections) < len(everything)


def test_unknown_class_in_allow_list_is_an_error():
    with pytest.raises(EdgecamError, match="unicorn"):
        Detector.load(str(SSD_MODEL), str(COCO_LABELS), options=DetectOptions(classes=("unicorn",)))


def test_letterbox_maps_boxes_back_exactly():
    t = fit_transform(1280, 720, 300, 300, "letterbox")
    assert (t.pad_x, t.pad_y) == (0, 65)
    # The frame's corners in model space come back as the frame's corners.
    top = t.pad_y / 300
    bottom = (t.pad_y + 720 * t.scale_y) / 300
    box = t.to_frame(top, 0.0, bottom, 1.0)
    assert box == BBox(0.0, 0.0, 1.0, 1.0)
    image = np.full((720, 1280, 3), 255, np.uint8)
    fitted = fit_image(image, t)
    assert fitted.shape == (300, 300, 3)
    assert fitted[0, 150].sum() == 0 and fitted[150, 150].sum() == 765


def test_letterbox_and_stretch_find_the_same_dogs():
    frame = frame_of("pets.jpg")
    stretch = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1).detect(frame).detections
    letter = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1,
                           options=DetectOptions(resize="letterbox")).detect(frame).detections
    assert [d.label for d in letter] == ["dog", "dog"]
    for a, b in zip(sorted(stretch, key=lambda d: d.bbox.x1), sorted(letter, key=lambda d: d.bbox.x1)):
        assert a.bbox.iou(b.bbox) > 0.8


def test_input_conversion_follows_the_model_dtype():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    assert _input_converter({"dtype": np.uint8})(pixels).tolist() == [[[[0, 128, 255]]]]
    assert _input_converter({"dtype": np.int8})(pixels).tolist() == [[[[-128, 0, 127]]]]
    as_float = _input_converter({"dtype": np.float32})(pixels)
    np.testing.assert_allclose(as_float, [[[[-1.0, 128 / 127.5 - 1, 1.0]]]], atol=1e-6)


@pytest.mark.parametrize("model,message", [
    (CLASSIFIER_025, "not an SSD detection model"),
    (EDGETPU_MODEL, "--delegate edgetpu"),
])
def test_wrong_models_are_clear_errors(model, message):
    with pytest.raises(EdgecamError, match=message):
        Detector.load(str(model), str(COCO_LABELS))


def test_edgetpu_delegate_missing_names_the_package():
    with pytest.raises(EdgecamError, match="libedgetpu1-std"):
        Detector.load(str(SSD_MODEL), str(COCO_LABELS), delegate="edgetpu")
