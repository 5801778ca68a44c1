"""Stand-in for picamera2 (tests only): the camera hardware, not edgecam's code.

`Picamera2` serves the scene photo of the hardware description as its main stream (RGB888:
B,G,R in memory) and, when an IMX500 is described, each frame's metadata as libcamera
reports it: ScalerCrop in full-sensor pixels, CnnOutputTensor as one flat float list with
each tensor in column-major order, CnnOutputTensorInfo as the packed C struct, CnnKpiInfo
as (DNN, DSP) microseconds. Frames captured while the network is not running yet carry
none of the Cnn* keys.
"""

from __future__ import annotations

import cv2
import numpy as np

from standin_hardware import hardware, scene


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
        self.config = None
        self.started = self.closed = False
        self.frames = 0
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

    def create_video_configuration(self, main=None, lores=None, buffer_count=6, controls=None):
        raw = tuple(self.hw.get("imx500", {}).get("raw_size", (2028, 1520)))
        return {"main": dict(main or {"size": (1280, 720), "format": "XBGR8888"}),
                "lores": lores, "raw": {"size": raw}, "buffer_count": buffer_count,
                "controls": dict(controls or {})}

    def configure(self, config):
        self.config = config

    def camera_configuration(self):
        return self.config

    def stream_configuration(self, name="main"):
        return self.config[name]

    def start(self):
        from picamera2.devices.imx500.imx500 import _upload
        self.started = True
        _upload.begin()

    def _main_image(self, crop):
        w, h = self.config["main"]["size"]
        photo = scene(self.hw["scene"])
        ph, pw = photo.shape[:2]
        x, y, cw, ch = crop
        # The scene fills the full 4056x3040 sensor; ScalerCrop is in those pixels.
        sx, sy = pw / 4056, ph / 3040
        view = photo[int(y * sy):int((y + ch) * sy), int(x * sx):int((x + cw) * sx)]
        return cv2.resize(view, (w, h), interpolation=cv2.INTER_AREA)

    def capture_arrays(self, names):
        from picamera2.devices.imx500.imx500 import sensor_metadata
        crop = tuple(self.hw.get("imx500", {}).get("scaler_crop", (0, 0, 4056, 3040)))
        main = self._main_image(crop)
        arrays = []
        for name in names:
            if name == "main":
                arrays.append(np.dstack([main, np.full(main.shape[:2], 255, np.uint8)])
                              if self.config["main"].get("format", "").startswith("X") else main)
            else:
                w, h = self.config[name]["size"]
                arrays.append(cv2.cvtColor(cv2.resize(main, (w, h)), cv2.COLOR_BGR2YUV_I420))
        self.frames += 1
        metadata = {"ScalerCrop": crop, "SensorTimestamp": self.frames}
        if "imx500" in self.hw:
            metadata.update(sensor_metadata(self.hw, self.frames))
        return arrays, metadata

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
