"""The Pi camera path, with only the camera hardware stood in for.

`StandInPicamera2` plays the part of picamera2.Picamera2, quirks included:
- configure() reads every stream back as libcamera settled it: the size may differ from the
  one asked for (`adjust`), and each stream gets a `stride`, its row length in bytes, which
  the Pi ISP aligns to 64 bytes;
- capture_arrays() returns what picamera2's `make_array` makes of such buffers: an RGB888
  stream (B, G, R in memory) as (h, w, 3) with the row padding cut off, a YUV420 stream as
  (h*3/2, stride) with the padding left in, a Y plane of h rows of `stride` bytes followed by
  U and V planes of h/2 rows of stride/2 bytes.
The pixels are a real photo, resized to the stream's size.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from edgecam.datatypes import Frame
from edgecam.detector import Detector
from edgecam.sources import LiveSource, PicameraCapture, SourceSpec, yuv420_to_bgr

from conftest import COCO_LABELS, IMAGES, SSD_MODEL

STRIDE_ALIGN = 64
# What the ISP leaves in the padding is undefined; a value no photo pixel is near shows it up.
PADDING = 0
BYTES_PER_PIXEL = {"RGB888": 3, "YUV420": 1}


def _padded_rows(plane: np.ndarray, stride: int) -> np.ndarray:
    """A 2-D plane written into rows of `stride` bytes, as a flat buffer."""
    rows = np.full((plane.shape[0], stride), PADDING, np.uint8)
    rows[:, :plane.shape[1]] = plane
    return rows.reshape(-1)


def isp_buffer(photo: np.ndarray, stream: dict) -> np.ndarray:
    """The array picamera2 returns for one configured stream, made from a BGR photo."""
    (w, h), stride = stream["size"], stream["stride"]
    bgr = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    if stream["format"] == "YUV420":
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
        y, u, v = i420[:w * h], i420[w * h:w * h * 5 // 4], i420[w * h * 5 // 4:]
        buffer = np.concatenate([_padded_rows(y.reshape(h, w), stride),
                                 _padded_rows(u.reshape(h // 2, w // 2), stride // 2),
                                 _padded_rows(v.reshape(h // 2, w // 2), stride // 2)])
        return buffer.reshape(h * 3 // 2, stride)  # picamera2 leaves the padding in
    buffer = _padded_rows(bgr.reshape(h, w * 3), stride)  # RGB888 is B, G, R in memory
    return np.ascontiguousarray(buffer.reshape(h, stride)[:, :w * 3]).reshape(h, w, 3)


class StandInPicamera2:
    """Camera hardware stand-in with picamera2's configuration and capture behaviour."""

    photo = None
    adjust = None  # (stream name, (w, h)) -> the (w, h) libcamera settles on; None: as asked

    def __init__(self, camera_num=0):
        self.camera_config, self.started, self.closed = None, False, False

    def create_video_configuration(self, main=None, lores=None, buffer_count=6, controls=None,
                                   **_ignored):
        main = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        lores = None if lores is None else {"format": "YUV420", "size": main["size"], **lores}
        for stream in filter(None, (main, lores)):
            w, h = stream["size"]
            stream["size"] = (w - w % 2, h - h % 2)  # picamera2 keeps sizes even
        return {"use_case": "video", "buffer_count": buffer_count, "main": main,
                "lores": lores, "raw": None, "controls": dict(controls or {})}

    def configure(self, camera_config):
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        config = dict(camera_config)  # shallow, as in picamera2: the stream dicts are updated
        for name in ("main", "lores"):
            stream = config[name]
            if stream is None:
                continue
            if stream["format"] not in BYTES_PER_PIXEL:
                raise NotImplementedError(f"{stream['format']} is not stood in for")
            if self.adjust:
                stream["size"] = self.adjust(name, stream["size"])
            w, h = stream["size"]
            row = w * BYTES_PER_PIXEL[stream["format"]]
            stream["stride"] = -(-row // STRIDE_ALIGN) * STRIDE_ALIGN
            stream["framesize"] = stream["stride"] * h * (3 if stream["format"] == "YUV420" else 2) // 2
        self.camera_config = config

    def stream_configuration(self, name="main"):
        return self.camera_config[name]

    def start(self):
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def capture_arrays(self, names=("main",)):
        arrays = [isp_buffer(self.photo, self.camera_config[name]) for name in names]
        return arrays, {"SensorTimestamp": time.monotonic_ns()}

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


def capture(spec, camera_class, n=3):
    """The first `n` frames of a LiveSource over PicameraCapture, and the stand-in camera."""
    cams = []

    def open_camera():
        cam = PicameraCapture(spec, picamera2_class=camera_class)
        cams.append(cam)
        return cam

    source = LiveSource("picamera", open_camera)
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == n:
            source.close()
    return frames, cams[0].cam


def test_picamera_lores_stream_feeds_the_model_without_resizing():
    photo = cv2.imread(str(IMAGES / "pets.jpg"))
    StandInPicamera2.photo = photo
    detector = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)
    spec = SourceSpec(uri="picamera", width=1280, height=720, fps=15, model_input_size=detector.input_size)
    frames, cam = capture(spec, StandInPicamera2)
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


def test_picamera_uses_the_lores_size_libcamera_settled_on(caplog):
    caplog.set_level(logging.INFO, logger="edgecam.sources")
    photo = cv2.imread(str(IMAGES / "traffic.bmp"))

    class Adjusting(StandInPicamera2):
        # libcamera may change a size in validate(); here it narrows the lores stream.
        @staticmethod
        def adjust(name, size):
            return (288, size[1]) if name == "lores" else size

    Adjusting.photo = photo
    spec = SourceSpec(uri="picamera", width=640, height=480, fps=10, model_input_size=(300, 300))
    frames, cam = capture(spec, Adjusting, n=2)
    assert cam.camera_config["lores"]["size"] == (288, 300)
    model_input = frames[0].model_input
    assert model_input.shape == (300, 300, 3)
    expected = cv2.resize(photo, (300, 300), interpolation=cv2.INTER_AREA)
    assert cv2.absdiff(model_input[:, -10:], expected[:, -10:]).mean() < 8, "padding got into the image"
    assert cv2.absdiff(model_input, expected).mean() < 6
    assert sum("288x300" in r.getMessage() for r in caplog.records) == 1, "said once, at open"


def test_padded_i420_converts_to_the_configured_width():
    photo = cv2.resize(cv2.imread(str(IMAGES / "traffic.bmp")), (300, 300))
    padded = isp_buffer(photo, {"format": "YUV420", "size": (300, 300), "stride": 320})
    assert padded.shape == (450, 320)
    back = yuv420_to_bgr(padded, 300)
    assert back.shape == photo.shape
    assert cv2.absdiff(back, photo).mean() < 6


def test_a_camera_without_a_sensor_reads_the_same_triple_with_nothing_detected():
    StandInPicamera2.photo = cv2.imread(str(IMAGES / "pets.jpg"))
    cam = PicameraCapture(SourceSpec(uri="picamera", width=640, height=480,
                                     model_input_size=(300, 300)), picamera2_class=StandInPicamera2)
    try:
        image, model_input, detected = cam.read()
    finally:
        cam.release()
    assert image.shape == (480, 640, 3) and model_input.shape == (300, 300, 3)
    assert detected is None
