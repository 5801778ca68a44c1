"""The AI Camera (IMX500) backend against the stand-in: detections on the main stream match the
CPU backend's, labels, frames without outputs, the CLI run, and what it refuses."""

from __future__ import annotations

import json
import time

import cv2
import pytest

from edgecam import backends as registry
from edgecam.datatypes import Frame
from edgecam.detector import DetectOptions
from edgecam.errors import EdgecamError
from edgecam.sources import PicameraCapture, SourceSpec

from accelerator_fixtures import (
    LAYOUTS,
    PHOTOS,
    assert_same,
    capture_once,
    imx500_detections,
    intrinsics,
    picamera2_labels,
    run_edgecam,
)
from conftest import COCO_LABELS, IMAGES


@pytest.mark.parametrize("order,normalized", LAYOUTS)
def test_imx500_detections_match_the_cpu_on_the_main_stream(standin, network, cpu, order, normalized):
    from edgecam.backends.imx500 import Imx500Backend
    compared = 0
    for photo in PHOTOS:
        standin(scene=str(IMAGES / photo),
                imx500={"intrinsics": intrinsics(order, normalized), "input_size": [320, 320]})
        backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
        cam, frame = capture_once(backend)
        assert cam.cam.camera_config["controls"]["FrameRate"] == 30.0
        assert cam.cam.camera_config["lores"] is None, "no CPU inference: no low-resolution stream"
        found = imx500_detections(backend, frame)
        expected = cpu.detect(frame).detections
        assert found, photo
        assert_same(found, expected)
        assert frame.detected.dnn_ms > 0 and frame.detected.dsp_ms == 1.2
        compared += len(found)
    assert compared >= 6


def test_imx500_scaler_crop_maps_into_the_cropped_main_stream(standin, network):
    """A 16:9 main stream crops the 4:3 sensor: boxes land where the crop puts them."""
    from edgecam.backends.imx500 import Imx500Backend
    crop = (0, 379, 4056, 2282)
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(), "scaler_crop": list(crop), "raw_size": [2028, 1520]})
    backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
    _cam, frame = capture_once(backend)
    found = imx500_detections(backend, frame)
    from standin_hardware import scene, ssd
    boxes, classes, scores, _n, _ms = ssd().run(cv2.cvtColor(scene(str(IMAGES / "pets.jpg")),
                                                             cv2.COLOR_BGR2RGB))
    expected = sorted(((float(s), b) for b, s in zip(boxes, scores) if s >= 0.5), reverse=True)
    assert len(found) == len(expected) == 2
    for d, (score, (y0, x0, y1, x1)) in zip(found, expected):
        # Sensor fractions -> full-sensor pixels -> inside the crop -> fractions of the main frame.
        ey0 = min(max((y0 * 3040 - crop[1]) / crop[3], 0), 1)
        ey1 = min(max((y1 * 3040 - crop[1]) / crop[3], 0), 1)
        assert d.score == pytest.approx(score)
        assert d.bbox.x1 == pytest.approx(x0, abs=0.002) and d.bbox.x2 == pytest.approx(x1, abs=0.002)
        assert d.bbox.y1 == pytest.approx(ey0, abs=0.002) and d.bbox.y2 == pytest.approx(ey1, abs=0.002)


def test_imx500_labels_from_a_file_win_and_dash_labels_close_up(standin, network):
    from edgecam.backends.imx500 import Imx500Backend, dense_or_indexed
    standin(scene=str(IMAGES / "pets.jpg"), imx500={"intrinsics": intrinsics()})
    with_file = Imx500Backend.load(str(network), str(COCO_LABELS), DetectOptions())
    assert with_file.labels[17] == "dog" and with_file.labels[0] == "person"
    labels = picamera2_labels()
    assert dense_or_indexed(labels, False)[17] == "dog" and 11 not in dense_or_indexed(labels, False)
    assert dense_or_indexed(labels, True)[11] == "stop sign"


def test_imx500_frames_without_outputs_are_no_information(standin, network, cpu):
    from edgecam.backends.imx500 import Imx500Backend
    from edgecam.pipeline import Pipeline
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(), "frames_without_outputs": 3})
    backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
    frames = []
    cam = PicameraCapture(SourceSpec(uri="picamera", width=640, height=480), sensor=backend)
    for seq in range(5):
        main, _lores, detected, _ts = cam.read()
        frames.append(Frame(seq, time.time(), time.monotonic(), main, "picamera", None, detected))
    cam.release()
    assert [f.detected is None for f in frames] == [True, True, True, False, False]

    class Frames:
        live, name = False, "picamera"

        def frames(self):
            yield from frames

        def close(self):
            pass

    class Collect:
        name, results = "collect", []

        def handle(self, result):
            self.results.append(result)

        def close(self):
            pass

    sink = Collect()
    pipeline = Pipeline(Frames(), [backend], [sink], drop=False).start()
    assert pipeline.wait(30)
    # Not "nothing there": the first three frames reach no sink and count as skipped.
    assert [r.frame.seq for r in sink.results] == [3, 4]
    assert pipeline.stats.skipped == 3 and pipeline.stats.processed == 2
    assert [d.label for d in sink.results[0].detections] == ["dog", "dog"]
    assert sink.results[0].timings["sensor_dnn"] > 0 and sink.results[0].timings["sensor_dsp"] == 1.2


def test_imx500_run_json_matches_the_cpu_run(standin, network, cli_env, cpu):
    env = standin(scene=str(IMAGES / "pets.jpg"),
                  imx500={"intrinsics": intrinsics("xy", True), "frames_without_outputs": 2})
    env = {**cli_env, **env}
    result = run_edgecam(env, "--detector", "imx500", "--model", str(network), "--source", "picamera",
                         "--width", "640", "--height", "480", "--json", "--max-frames", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    seqs = [ln["seq"] for ln in lines]
    # Frames 0 and 1 carry no outputs; a live camera may drop any later one under load.
    assert len(seqs) == 2 and 2 <= seqs[0] < seqs[1], "frames without outputs are not reported"
    assert "detector imx500" in result.stderr
    # The CPU backend, in this process, on the frame the camera delivered (the same main stream).
    frame = cv2.resize(cv2.imread(str(IMAGES / "pets.jpg")), (640, 480), interpolation=cv2.INTER_AREA)
    expected = cpu.detect(Frame(0, 0.0, 0.0, frame)).detections
    for line in lines:
        assert_same(line["detections"], expected)
        assert set(line) == {"type", "seq", "ts", "source", "width", "height", "inference_ms",
                             "detections"}


def test_imx500_without_picamera2_names_the_package(cli_env):
    result = run_edgecam(cli_env, "--detector", "imx500", "--source", "picamera", timeout=60)
    assert result.returncode == 2 and "imx500-all" in result.stderr
    assert "Traceback" not in result.stderr


def test_imx500_needs_the_pi_camera(standin, network, cli_env):
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), imx500={"intrinsics": intrinsics()})}
    result = run_edgecam(env, "--detector", "imx500", "--model", str(network),
                         "--source", str(IMAGES / "pets.jpg"), timeout=60)
    assert result.returncode == 2 and "--source picamera" in result.stderr


def test_imx500_network_without_sensor_postprocessing_is_refused(standin, network):
    from edgecam.backends.imx500 import Imx500Backend
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(cpu={"post_processing": "nanodet"})})
    with pytest.raises(EdgecamError, match="nanodet"):
        Imx500Backend.load(str(network), None)


def test_imx500_missing_camera_is_one_line(standin, network, cli_env):
    env = {**cli_env, **standin(camera="imx708", scene=str(IMAGES / "pets.jpg"))}
    result = run_edgecam(env, "--detector", "imx500", "--model", str(network), "--source", "picamera",
                         timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "cannot open the IMX500 AI Camera (IMX500: Requested camera dev-node not found)" in result.stderr
    assert "imx500-all" in result.stderr and "Traceback" not in result.stderr


def test_imx500_decodes_no_candidate_below_the_lowest_threshold_of_the_run(standin, network):
    """Candidates no threshold of the run would keep are dropped on the capture thread before
    convert_inference_coords; what a frame yields is unchanged."""
    from edgecam.app import lowest_threshold
    from edgecam.backends.imx500 import Imx500Backend
    from edgecam.config import from_mapping
    results = {}
    for floor in (0.5, 0.0):
        standin(scene=str(IMAGES / "pets.jpg"),
                imx500={"intrinsics": intrinsics(), "input_size": [320, 320]})
        backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5),
                                     score_floor=None if floor == 0.5 else floor)
        converted = []
        convert = backend.device.convert_inference_coords
        backend.device.convert_inference_coords = lambda *a, **k: converted.append(a) or convert(*a, **k)
        _cam, frame = capture_once(backend)
        results[floor] = (len(converted), frame.detected.candidates, imx500_detections(backend, frame))
    (above, kept, found), (every, all_candidates, found_all) = results[0.5], results[0.0]
    assert every > above == len(kept) > 0, "candidates below 0.5 reach the sensor's outputs"
    assert all(c.score >= 0.5 for c in kept)
    assert kept == tuple(c for c in all_candidates if c.score >= 0.5)
    assert found == found_all
    # set/threshold over MQTT may lower the threshold to its minimum at run time.
    assert lowest_threshold(from_mapping({"detect": {"threshold": 0.6}})) == 0.6
    assert lowest_threshold(from_mapping({"detect": {"threshold": 0.6},
                                          "mqtt": {"host": "127.0.0.1"}})) == 0.0


def test_the_imx500_loader_gives_a_backend_that_is_its_own_sensor(standin, network):
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(), "input_size": [320, 320]})
    request = registry.LoadRequest(str(network), None, DetectOptions(threshold=0.5),
                                   score_floor=0.2, fallback_labels=str(COCO_LABELS))
    [imx500] = registry.load("imx500", request)
    assert isinstance(imx500, registry.Backend)
    assert imx500.sensor is imx500 and imx500.score_floor == 0.2
    assert imx500.sensor.controls() == {"FrameRate": 30.0}
    assert "IMX500" in imx500.describe()
