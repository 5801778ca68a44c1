"""The Pi camera path, with only the camera hardware stood in for: the one picamera2 stand-in
(tests/standins/picamera2, the `standin` fixture), whose Picamera2 pads rows to the ISP's
64-byte stride, settles stream sizes as libcamera may, and returns arrays as picamera2's
`make_array` does. The pixels are a real photo, resized to the stream's size.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import pytest

from edgecam.datatypes import Frame
from edgecam.detector import Detector
from edgecam.sources import LiveSource, PicameraCapture, SourceSpec, yuv420_to_bgr

from accelerator_fixtures import run_edgecam
from conftest import COCO_LABELS, IMAGES, SSD_MODEL



def capture(spec, n=3):
    """The first `n` frames of a LiveSource over PicameraCapture, and the stand-in camera."""
    cams = []

    def open_camera():
        cam = PicameraCapture(spec)  # imports picamera2: the stand-in the fixture put on the path
        cams.append(cam)
        return cam

    source = LiveSource("picamera", open_camera)
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == n:
            source.close()
    return frames, cams[0].cam


def test_picamera_lores_stream_feeds_the_model_without_resizing(standin):
    standin(camera="imx708", scene=str(IMAGES / "pets.jpg"))
    photo = cv2.imread(str(IMAGES / "pets.jpg"))
    detector = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)
    spec = SourceSpec(uri="picamera", width=1280, height=720, fps=15, model_input_size=detector.input_size)
    frames, cam = capture(spec)
    config = cam.camera_config
    assert (config["main"]["size"], config["main"]["format"]) == ((1280, 720), "RGB888")
    assert (config["lores"]["size"], config["lores"]["format"]) == ((300, 300), "YUV420")
    assert config["lores"]["stride"] == 320, "the stand-in pads 300-pixel rows like the ISP"
    assert config["controls"] == {"FrameRate": 15.0}
    assert cam.closed, "the camera is released when the source closes"
    frame = frames[0]
    assert frame.image.shape == (720, 1280, 3) and frame.model_input.shape == (300, 300, 3)
    # The photo, not the padding: the right-hand columns too.
    expected = cv2.resize(photo, (300, 300), interpolation=cv2.INTER_AREA)
    assert cv2.absdiff(frame.model_input, expected).mean() < 6
    assert cv2.absdiff(frame.model_input[:, -10:], expected[:, -10:]).mean() < 6
    # The model is fed the lores image as is; the main frame is not resized on the CPU.
    fed, _ = detector.preprocess(frame.image, frame.model_input)
    lores_alone, _ = detector.preprocess(frame.model_input)
    main_resized, _ = detector.preprocess(frame.image)
    assert np.array_equal(fed, lores_alone) and not np.array_equal(fed, main_resized)
    # And it finds what the main frame shows.
    result = detector.detect(frame)
    from_main = detector.detect(Frame(0, time.time(), time.monotonic(), frame.image))
    assert [d.label for d in result.detections] == [d.label for d in from_main.detections] == ["dog", "dog"]
    for a, b in zip(result.detections, from_main.detections):
        assert abs(a.score - b.score) < 0.05
        assert np.abs(np.subtract(a.bbox.as_list(), b.bbox.as_list())).max() < 0.03


def test_picamera_uses_the_lores_size_libcamera_settled_on(standin, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.sources")
    # libcamera may change a size in validate(); here it narrows the lores stream.
    standin(camera="imx708", scene=str(IMAGES / "traffic.bmp"), settle={"lores": [288, 300]})
    photo = cv2.imread(str(IMAGES / "traffic.bmp"))
    spec = SourceSpec(uri="picamera", width=640, height=480, fps=10, model_input_size=(300, 300))
    frames, cam = capture(spec, n=2)
    assert cam.camera_config["lores"]["size"] == (288, 300)
    model_input = frames[0].model_input
    assert model_input.shape == (300, 300, 3)
    expected = cv2.resize(photo, (300, 300), interpolation=cv2.INTER_AREA)
    assert cv2.absdiff(model_input[:, -10:], expected[:, -10:]).mean() < 8, "padding got into the image"
    assert cv2.absdiff(model_input, expected).mean() < 6
    assert sum("288x300" in r.getMessage() for r in caplog.records) == 1, "said once, at open"


def test_padded_i420_converts_to_the_configured_width(standin):
    standin(camera="imx708")
    from picamera2 import isp_buffer
    photo = cv2.resize(cv2.imread(str(IMAGES / "traffic.bmp")), (300, 300))
    padded = isp_buffer(photo, {"format": "YUV420", "size": (300, 300), "stride": 320})
    assert padded.shape == (450, 320)
    back = yuv420_to_bgr(padded, 300)
    assert back.shape == photo.shape
    assert cv2.absdiff(back, photo).mean() < 6


def test_a_camera_without_a_sensor_reads_the_same_tuple_with_nothing_detected(standin):
    standin(camera="imx708", scene=str(IMAGES / "pets.jpg"))
    cam = PicameraCapture(SourceSpec(uri="picamera", width=640, height=480, model_input_size=(300, 300)))
    try:
        image, model_input, detected, ts = cam.read()
    finally:
        cam.release()
    assert image.shape == (480, 640, 3) and model_input.shape == (300, 300, 3)
    assert detected is None and ts is None  # the frame is stamped when it is read


def test_the_stand_in_refuses_what_picamera2_refuses(standin):
    standin(camera="imx708", scene=str(IMAGES / "pets.jpg"))
    from picamera2 import Picamera2
    cam = Picamera2()
    with pytest.raises(RuntimeError, match="not been configured"):
        cam.start()
    config = cam.create_video_configuration(main={"size": (641, 481)}, lores={"size": (301, 301)})
    assert (config["main"]["format"], config["main"]["size"]) == ("XBGR8888", (640, 480))
    assert (config["lores"]["format"], config["lores"]["size"]) == ("YUV420", (300, 300))
    cam.configure(config)
    cam.start()
    with pytest.raises(RuntimeError, match="must be stopped"):
        cam.configure(config)
    (main, lores), _ = cam.capture_arrays(["main", "lores"])
    # XBGR8888 is R, G, B, 255 in memory; YUV420 keeps the ISP's padding (300 -> 320 bytes).
    assert main.shape == (480, 640, 4) and (main[:, :, 3] == 255).all()
    photo = cv2.resize(cv2.imread(str(IMAGES / "pets.jpg")), (640, 480), interpolation=cv2.INTER_AREA)
    assert np.array_equal(main[:, :, 2::-1], photo)
    assert lores.shape == (450, 320)
    cam.close()


def test_a_pi_camera_that_is_not_connected_is_one_line_at_start(standin, cli_env):
    # picamera2 installed, no camera on the ribbon: Picamera2() raises as the real one does.
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"))}
    result = run_edgecam(env, "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS), "--source",
                         "picamera", "--json", "--max-frames", "1", timeout=60)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.strip().splitlines() == [
        "edgecam: error: camera picamera did not open (list index out of range): is it connected "
        "(`rpicam-hello --list-cameras`), or in use by another program?"], result.stderr
