"""The Hailo (AI Kit / AI HAT+) backend against the stand-in: files, the Pi camera's lores stream
and network streams match the CPU backend, the default HEF, and the device released once."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from edgecam import backends as registry
from edgecam.datatypes import Frame
from edgecam.detector import DetectOptions, Detector
from edgecam.errors import EdgecamError
from edgecam.sources import PicameraCapture, SourceSpec

from accelerator_fixtures import PHOTOS, assert_same, run_edgecam
from conftest import COCO_LABELS, COCO_LABELS_90, IMAGES, SSD_MODEL


@pytest.mark.parametrize("photo", PHOTOS)
def test_hailo_on_a_file_matches_the_cpu(standin, hef, cli_env, cpu, photo):
    env = {**cli_env, **standin(hailo={"hailort": True, "architecture": "HAILO8L",
                                       "input_shape": [640, 640, 3]})}
    source = str(IMAGES / photo)
    hailo = run_edgecam(env, "--detector", "hailo", "--model", str(hef), "--labels", str(COCO_LABELS),
                        "--source", source, "--json")
    assert hailo.returncode == 0, hailo.stderr
    got = json.loads(hailo.stdout.splitlines()[0])["detections"]
    # The CPU backend on the same file, in this process (its CLI is tested in test_run_cli).
    expected = cpu.detect(Frame(0, 0.0, 0.0, cv2.imread(source))).detections
    assert_same(got, expected)
    coco80 = [n for n in COCO_LABELS_90.read_text().splitlines() if n != "n/a"]
    assert all(coco80[d["class_id"]] == d["label"] for d in got), "YOLO's 80-class ids"


def test_hailo_takes_the_pi_cameras_lores_stream_as_is(standin, hef, cpu):
    from edgecam.backends.hailo import HailoBackend
    standin(camera="imx708", scene=str(IMAGES / "pets.jpg"),
            hailo={"hailort": True, "architecture": "HAILO8", "input_shape": [640, 640, 3]})
    backend = HailoBackend.load(str(hef), str(COCO_LABELS), DetectOptions(threshold=0.5))
    assert backend.input_size == (640, 640)
    cam = PicameraCapture(SourceSpec(uri="picamera", width=1280, height=720,
                                     model_input_size=backend.input_size))
    main, lores, *_ = cam.read()
    cam.release()
    lores_stream = cam.cam.camera_config["lores"]
    assert (lores_stream["size"], lores_stream["format"]) == ((640, 640), "YUV420")
    frame = Frame(0, time.time(), time.monotonic(), main, "picamera", lores)
    tensor, transform = backend.prepare(frame)
    found = backend.postprocess(backend.invoke(tensor), transform)
    assert (backend.device.runs[-1] == cv2.cvtColor(lores, cv2.COLOR_BGR2RGB)).all()
    assert_same(found, cpu.detect(frame).detections)


def test_hailo_default_model_follows_the_architecture(standin):
    from edgecam.backends.hailo import HailoBackend
    standin(hailo={"hailort": True, "architecture": "HAILO10H"})
    with pytest.raises(EdgecamError, match="yolov8m_h10.hef.*hailo-h10-all"):
        HailoBackend.load(None, str(COCO_LABELS))
    standin(hailo={"hailort": True, "architecture": None})
    with pytest.raises(EdgecamError, match="no Hailo accelerator found"):
        HailoBackend.load(None, str(COCO_LABELS))


def test_hailo_on_a_network_stream(standin, hef, cli_env):
    """A stream's frames are resized on the CPU for the accelerator, like a file's."""
    from mjpeg_server import MjpegCamera, free_port
    photo = cv2.imread(str(IMAGES / "pets.jpg"))
    camera = MjpegCamera(photo, free_port()).start()
    try:
        env = {**cli_env, **standin(hailo={"hailort": True, "architecture": "HAILO8L"})}
        result = run_edgecam(env, "--detector", "hailo", "--model", str(hef), "--labels", str(COCO_LABELS),
                             "--source", camera.url, "--json", "--max-frames", "2")
    finally:
        camera.stop()
    assert result.returncode == 0, result.stderr
    # The CPU backend on the same (JPEG-decoded) frame.
    still = cv2.imdecode(np.frombuffer(camera.jpeg, np.uint8), cv2.IMREAD_COLOR)
    cpu = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)
    expected = cpu.detect(Frame(0, 0.0, 0.0, still)).detections
    for line in result.stdout.splitlines():
        assert_same(json.loads(line)["detections"], expected)


def test_a_run_releases_the_hailo_device_once_whether_it_ends_or_fails_to_start(standin, hef, tmp_path):
    """picamera2's Hailo.close() releases the shared VDevice (and a second close fails): a run
    closes its backend exactly once, after the frames, and also when its setup fails."""
    import io

    from edgecam.app import run
    from edgecam.config import from_mapping
    standin(hailo={"hailort": True, "architecture": "HAILO8L", "input_shape": [640, 640, 3]})
    from picamera2.devices import Hailo
    model = {"detector": "hailo", "path": str(hef), "labels": str(COCO_LABELS)}
    out = io.StringIO()
    summary = run(from_mapping({"model": model, "source": {"uri": str(IMAGES / "pets.jpg")}}),
                  json_output=True, stdout=out)
    assert summary.processed == 1 and json.loads(out.getvalue().splitlines()[0])["detections"]
    assert (Hailo.TARGET, Hailo.TARGET_REF_COUNT) == (None, 0), "released once after the run"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    failing_setups = [
        {"source": {"uri": str(tmp_path / "missing.mp4")}},  # open_source fails
        {"source": {"uri": str(IMAGES / "pets.jpg")}, "mqtt": {"host": "127.0.0.1"},
         "service": {"state_dir": str(not_a_dir / "state")}},  # mqtt_side fails
    ]
    for setup in failing_setups:
        with pytest.raises(EdgecamError):
            run(from_mapping({"model": model, **setup}), json_output=True, stdout=io.StringIO())
        assert (Hailo.TARGET, Hailo.TARGET_REF_COUNT) == (None, 0), setup


def test_the_hailo_loader_gives_a_backend_without_a_sensor(standin, hef):
    standin(scene=str(IMAGES / "pets.jpg"),
            hailo={"hailort": True, "architecture": "HAILO8L", "input_shape": [640, 640, 3]})
    request = registry.LoadRequest(str(hef), None, fallback_labels=str(COCO_LABELS))
    [hailo] = registry.load("hailo", request)
    try:
        assert isinstance(hailo, registry.Backend)
        assert hailo.sensor is None and hailo.labels[0] == "person", "the fallback labels"
        assert "HAILO8L" in hailo.describe()
    finally:
        hailo.close()
