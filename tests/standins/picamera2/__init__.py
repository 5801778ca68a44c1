"""Stand-in for picamera2 (tests only): the camera hardware, not edgecam's code.

`Picamera2` looks at the scene photo of the hardware description and behaves as picamera2
does, quirks included:
- create_video_configuration() fills in picamera2's defaults (main XBGR8888 1280x720, lores
  YUV420 at the main size) and keeps sizes even;
- configure() refuses a started camera, and reads every stream back as libcamera settled it:
  the size may differ from the one asked for (`settle` in the description, e.g.
  {"lores": [288, 300]}), and each stream gets a `stride`, its row length in bytes, which the
  Pi ISP aligns to 64 bytes;
- capture_arrays() returns what picamera2's `make_array` makes of such buffers: RGB888
  (B, G, R in memory) as (h, w, 3) and XBGR8888 (R, G, B, 255) as (h, w, 4), the row padding
  cut off; YUV420 as (h*3/2, stride) with the padding left in: a Y plane of h rows of `stride`
  bytes, then U and V planes of h/2 rows of stride/2 bytes.
When an IMX500 is described, each frame's metadata is as libcamera reports it: ScalerCrop in
full-sensor pixels, CnnOutputTensor as one flat float list with each tensor in column-major
order, CnnOutputTensorInfo as the packed C struct, CnnKpiInfo as (DNN, DSP) microseconds.
Frames captured while the network is not running yet carry none of the Cnn* keys.
Encoders (picamera2.encoders, real libx264 through PyAV) started with start_encoder() on a
stream encode that stream's buffer of every frame the camera makes, with the frame's
SensorTimestamp (nanoseconds of CLOCK_BOOTTIME, as libcamera's), and frames then come at the
configured FrameRate, as a real camera's do; stop() leaves them running (picamera2's
stop_recording() is stop() then stop_encoder()).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from standin_hardware import hardware, scene

STRIDE_ALIGN = 64
# What the ISP leaves in the row padding is undefined; a value no photo pixel is near shows it up.
PADDING = 0
BYTES_PER_PIXEL = {"RGB888": 3, "BGR888": 3, "XBGR8888": 4, "XRGB8888": 4, "YUV420": 1}


def _padded_rows(plane: np.ndarray, stride: int) -> np.ndarray:
    """A 2-D plane written into rows of `stride` bytes, as a flat buffer."""
    rows = np.full((plane.shape[0], stride), PADDING, np.uint8)
    rows[:, :plane.shape[1]] = plane
    return rows.reshape(-1)


def isp_buffer(bgr: np.ndarray, stream: dict) -> np.ndarray:
    """The array picamera2 returns for one configured stream showing the BGR image `bgr`."""
    (w, h), stride, fmt = stream["size"], stream["stride"], stream["format"]
    bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    if fmt == "YUV420":
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
        y, u, v = i420[:w * h], i420[w * h:w * h * 5 // 4], i420[w * h * 5 // 4:]
        buffer = np.concatenate([_padded_rows(y.reshape(h, w), stride),
                                 _padded_rows(u.reshape(h // 2, w // 2), stride // 2),
                                 _padded_rows(v.reshape(h // 2, w // 2), stride // 2)])
        return buffer.reshape(h * 3 // 2, stride)  # picamera2 leaves the padding in
    pixels = {"RGB888": bgr, "BGR888": bgr[:, :, ::-1],
              "XBGR8888": np.dstack([bgr[:, :, ::-1], np.full((h, w), 255, np.uint8)]),
              "XRGB8888": np.dstack([bgr, np.full((h, w), 255, np.uint8)])}[fmt]
    row = w * BYTES_PER_PIXEL[fmt]
    buffer = _padded_rows(pixels.reshape(h, row), stride)
    return np.ascontiguousarray(buffer.reshape(h, stride)[:, :row]).reshape(h, w, -1)


class _Request:
    """A completed request as an encoder sees it: the stream buffers and the metadata,
    held (acquire) until the encoder releases it."""

    def __init__(self, buffers, metadata):
        self._buffers, self.metadata, self.held = buffers, metadata, 0
        self.request = self  # picamera2's CompletedRequest wraps libcamera's as .request

    def make_array(self, name):
        return self._buffers[name]

    def acquire(self):
        self.held += 1

    def release(self):
        self.held -= 1


class Picamera2:
    """The camera: configuration calls recorded, frames made from the scene photo."""

    opened = []

    def __init__(self, camera_num=0):
        hw = hardware()
        cams = self.global_camera_info()
        if not cams or camera_num >= len(cams):
            raise IndexError("list index out of range")  # what picamera2 raises with no camera
        self.camera_num = camera_num
        self.model = cams[camera_num]["Model"]
        self.hw = hw
        self.camera_config = None
        self.started = self.closed = False
        self.frames = 0
        self._encoders = set()
        self.encode_stream_name = "main"
        Picamera2.opened.append(self)

    @staticmethod
    def global_camera_info():
        """One entry per camera, like libcamera's list."""
        hw = hardware()
        if "imx500" in hw:
            return [{"Model": "imx500", "Location": 2, "Rotation": 0,
                     "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx500@1a", "Num": 0}]
        if "camera" in hw:
            return [{"Model": hw["camera"], "Location": 2, "Rotation": 0,
                     "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a", "Num": 0}]
        return []

    def create_video_configuration(self, main=None, lores=None, buffer_count=6, controls=None,
                                   **_ignored):
        raw = tuple(self.hw.get("imx500", {}).get("raw_size", (2028, 1520)))
        main = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        lores = None if lores is None else {"format": "YUV420", "size": main["size"], **lores}
        for stream in filter(None, (main, lores)):
            w, h = stream["size"]
            stream["size"] = (w - w % 2, h - h % 2)  # picamera2 keeps sizes even
        return {"use_case": "video", "main": main, "lores": lores, "raw": {"size": raw},
                "buffer_count": buffer_count, "controls": dict(controls or {}), "encode": "main"}

    def configure(self, camera_config):
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        config = dict(camera_config)  # shallow, as in picamera2: the stream dicts are updated
        settle = self.hw.get("settle", {})
        for name in ("main", "lores"):
            stream = config[name]
            if stream is None:
                continue
            if stream["format"] not in BYTES_PER_PIXEL:
                raise NotImplementedError(f"{stream['format']} is not stood in for")
            if name in settle:
                stream["size"] = tuple(settle[name])  # libcamera's validate() changed it
            w, h = stream["size"]
            row = w * BYTES_PER_PIXEL[stream["format"]]
            stream["stride"] = -(-row // STRIDE_ALIGN) * STRIDE_ALIGN
            stream["framesize"] = stream["stride"] * h * (3 if stream["format"] == "YUV420" else 2) // 2
        self.camera_config = config

    def camera_configuration(self):
        return self.camera_config

    def stream_configuration(self, name="main"):
        return self.camera_config[name]

    def start(self):
        from picamera2.devices.imx500.imx500 import _upload
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True
        _upload.begin()

    def _view(self, crop):
        """The part of the scene the ScalerCrop shows (the scene fills the 4056x3040 sensor)."""
        photo = scene(self.hw["scene"])
        ph, pw = photo.shape[:2]
        x, y, cw, ch = crop
        sx, sy = pw / 4056, ph / 3040
        return photo[int(y * sy):int((y + ch) * sy), int(x * sx):int((x + cw) * sx)]

    def capture_arrays(self, names=("main",)):
        from picamera2.devices.imx500.imx500 import sensor_metadata
        crop = tuple(self.hw.get("imx500", {}).get("scaler_crop", (0, 0, 4056, 3040)))
        view = self._view(crop)
        if self._encoders:
            self._pace()
        buffers = {name: isp_buffer(view, self.camera_config[name])
                   for name in set(names) | {e.name for e in self._encoders}}
        self.frames += 1
        metadata = {"ScalerCrop": crop, "SensorTimestamp": time.clock_gettime_ns(time.CLOCK_BOOTTIME)}
        if "imx500" in self.hw:
            metadata.update(sensor_metadata(self.hw, self.frames))
        for encoder in list(self._encoders):  # picamera2 encodes each completed request
            encoder.encode(encoder.name, _Request(buffers, metadata))
        return [buffers[name] for name in names], metadata

    def _pace(self):
        # A real camera delivers frames at its FrameRate, whoever asks; the stand-in makes one
        # when asked, so with an encoder running (which must see the camera's frame rate) it
        # waits for the next frame time.
        interval = 1.0 / float(self.camera_config["controls"].get("FrameRate", 30.0))
        now = time.monotonic()
        due = getattr(self, "_next_frame", now)
        if due > now:
            time.sleep(due - now)
        self._next_frame = max(due, now) + interval

    def start_encoder(self, encoder=None, output=None, pts=None, quality=None, name=None):
        """As picamera2's: the encoder gets the stream's size, format and stride, a frame rate
        (the configured one, at most 30) and its output, and starts."""
        if encoder is None:
            if len(self._encoders) != 1:
                raise RuntimeError("No encoder specified")
            encoder = next(iter(self._encoders))
        if output is not None:
            encoder.output = output
        name = name or self.encode_stream_name
        stream = (self.camera_config or {}).get(name)
        if stream is None:
            raise RuntimeError(f"Encode stream {name} was not defined")
        encoder.name = name
        encoder.width, encoder.height = stream["size"]
        encoder.format, encoder.stride = stream["format"], stream["stride"]
        if getattr(encoder, "framerate", None) is None:
            encoder.framerate = min(30.0, float(self.camera_config["controls"].get("FrameRate", 30.0)))
        encoder.start(quality=quality)
        self._encoders.add(encoder)

    def stop_encoder(self, encoders=None):
        """Stop the given encoder(s), by default every running one."""
        chosen = list(self._encoders) if encoders is None else (
            [encoders] if not isinstance(encoders, (list, set)) else list(encoders))
        for encoder in chosen:
            encoder.stop()
            self._encoders.discard(encoder)

    @property
    def encoders(self):
        return self._encoders

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
