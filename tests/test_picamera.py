"""The Pi camera path, with only the camera hardware stood in for.

`StandInPicamera2` plays the part of picamera2.Picamera2: it accepts the same configuration
calls and hands back a real photo as the main stream (RGB888, i.e. BGR in memory) and as an
I420 low-resolution stream, the formats libcamera delivers on a Pi 4.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from edgecam.datatypes import Frame
from edgecam.detector import Detector
from edgecam.sources import LiveSource, PicameraCapture, SourceSpec, yuv420_to_bgr

from conftest import COCO_LABELS, IMAGES, SSD_MODEL


class StandInPicamera2:
    """Camera hardware stand-in: records the configuration, serves a photo at the asked sizes."""

    photo = None

    def __init__(self):
        self.config, self.started, self.closed = None, False, False

    def create_video_configuration(self, main, lores=None, buffer_count=4, controls=None):
        return {"main": main, "lores": lores, "buffer_count": buffer_count, "controls": controls}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_arrays(self, names):
        out = []
        for name in names:
            w, h = self.config[name]["size"]
            bgr = cv2.resize(self.photo, (w, h))
            if self.config[name]["format"] == "YUV420":
                out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420))
            else:  # RGB888 arrives as 4-byte XBGR on some Pis; OpenCV order either way
                out.append(np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]))
        return out, {}

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


def test_picamera_lores_stream_feeds_the_model_without_resizing():
    StandInPicamera2.photo = cv2.imread(str(IMAGES / "pets.jpg"))
    detector = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)
    spec = SourceSpec(uri="picamera", width=1280, height=720, fps=15, model_input_size=detector.input_size)
    cams = []

    def open_camera():
        cam = PicameraCapture(spec, picamera2_class=StandInPicamera2)
        cams.append(cam)
        return cam

    source = LiveSource("picamera", open_camera)
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 3:
            source.close()
    cam = cams[0].cam
    assert cam.config["main"] == {"size": (1280, 720), "format": "RGB888"}
    assert cam.config["lores"] == {"size": (300, 300), "format": "YUV420"}
    assert cam.config["controls"] == {"FrameRate": 15.0}
    assert cam.closed, "the camera is released when the source closes"
    frame = frames[0]
    assert frame.image.shape == (720, 1280, 3) and frame.model_input.shape == (300, 300, 3)
    result = detector.detect(frame)
    assert [d.label for d in result.detections] == ["dog", "dog"]
    # The lores image went to the model as is: same result as detecting on it alone.
    alone = detector.detect(Frame(0, time.time(), time.monotonic(), frame.model_input))
    assert [d.score for d in alone.detections] == [d.score for d in result.detections]


def test_i420_conversion_round_trips():
    photo = cv2.resize(cv2.imread(str(IMAGES / "traffic.bmp")), (300, 300))
    back = yuv420_to_bgr(cv2.cvtColor(photo, cv2.COLOR_BGR2YUV_I420))
    assert back.shape == photo.shape
    assert cv2.absdiff(back, photo).mean() < 6
