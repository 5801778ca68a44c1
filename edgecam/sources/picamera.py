"""The Raspberry Pi camera through picamera2, imported lazily, with a one-line diagnosis of
an install that is missing or broken (the numpy mismatch most of all)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import Optional, Tuple

import cv2
import numpy as np

from ..errors import EdgecamError
from .base import SourceSpec
from .live import CaptureDevice, Captured

log = logging.getLogger("edgecam.sources")


class PicameraCapture(CaptureDevice):
    """The Raspberry Pi camera through picamera2: a main stream for output and a low-resolution
    stream at the model's input size, so the CPU does not resize the main frame.

    `sensor` is a camera that detects on its own sensor (edgecam.backends.imx500): it names the
    camera (`camera_num`), adds `controls()`, is told once the camera `started(cam)`, and
    `read(metadata, cam)` turns each frame's metadata into its SensorDetections (or None).
    `recorder` (edgecam.clips.picamera.PicameraClipTap) is told the camera `started(cam)` and
    is `stopping(cam)` before it stops: it runs picamera2's H.264 encoder on the main stream.
    """

    name = "picamera"

    def __init__(self, spec: SourceSpec, picamera2_class=None, sensor=None, recorder=None):
        cls = picamera2_class or import_picamera2()
        self.sensor, self.recorder = sensor, recorder
        self.cam = cls() if sensor is None else cls(sensor.camera_num)
        # "RGB888" in libcamera is B,G,R in memory: exactly OpenCV's BGR.
        streams = {"main": {"size": (spec.width, spec.height), "format": "RGB888"}}
        if spec.model_input_size and sensor is None:
            streams["lores"] = {"size": tuple(spec.model_input_size), "format": "YUV420"}
        controls = {"FrameRate": float(spec.fps), **(sensor.controls() if sensor else {})}
        try:
            config = self.cam.create_video_configuration(**streams, buffer_count=4, controls=controls)
            self.cam.configure(config)
            self.cam.start()
            # libcamera may have changed the size asked for; the buffers have the size it chose.
            self.lores_size: Optional[Tuple[int, ...]] = (
                tuple(self.cam.stream_configuration("lores")["size"]) if "lores" in streams else None
            )
            if sensor is not None:
                sensor.started(self.cam)
            if recorder is not None:
                recorder.started(self.cam)
        except BaseException:
            self.cam.close()  # a camera left open is "busy" for every retry after this one
            raise
        model_size = tuple(spec.model_input_size) if spec.model_input_size else None
        self.model_input_size: Optional[Tuple[int, ...]] = model_size
        if self.lores_size and model_size and self.lores_size != model_size:
            log.info(
                "libcamera made the low-resolution stream %dx%d instead of %dx%d: "
                "resizing it to the model's input",
                *self.lores_size,
                *model_size,
            )

    def read(self) -> Captured:
        names = ["main", "lores"] if self.lores_size else ["main"]
        arrays, metadata = self.cam.capture_arrays(names)
        lores = self._model_input(arrays[1]) if self.lores_size else None
        detected = self.sensor.read(metadata, self.cam) if self.sensor is not None else None
        return arrays[0][:, :, :3], lores, detected, None

    def _model_input(self, yuv: np.ndarray) -> np.ndarray:
        lores_size, model_size = self.lores_size, self.model_input_size
        assert lores_size is not None and model_size is not None  # read() asks only with a lores stream
        lores = yuv420_to_bgr(yuv, lores_size[0])
        if lores_size != model_size:
            lores = cv2.resize(lores, model_size, interpolation=cv2.INTER_AREA)
        return lores

    def release(self):
        try:
            if self.recorder is not None:
                self.recorder.stopping(self.cam)
            self.cam.stop()
        finally:
            self.cam.close()


def yuv420_to_bgr(yuv: np.ndarray, width: int) -> np.ndarray:
    """A picamera2 YUV420 (I420) array as a BGR image `width` pixels wide.

    picamera2 returns YUV420 as (h*3/2, stride) with the ISP's row padding left in: the Y
    rows are `stride` bytes, the U and V rows stride/2, which is exactly I420 of width
    `stride`. So the whole array converts in one call, and the padding is cut off after.
    """
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)[:, :width]


class Picamera2Unavailable(EdgecamError):
    """picamera2 cannot be imported: `installed` tells a broken install from a missing one;
    `reason` and `fix` are the two halves of the message."""

    def __init__(self, installed: bool, reason: str, fix: str):
        super().__init__(f"{reason}: {fix}")
        self.installed, self.reason, self.fix = installed, reason, fix


def import_picamera2():
    """picamera2.Picamera2, imported only when the Pi camera is used; Picamera2Unavailable
    naming the real import error when it is installed but broken."""
    # A module built against another numpy prints numpy's advice on stderr before it fails;
    # the error raised here says it in one line, so that text stays out of the log.
    with contextlib.redirect_stderr(io.StringIO()) as noise:
        try:
            from picamera2 import Picamera2
        except ModuleNotFoundError as exc:
            if exc.name == "picamera2":
                raise Picamera2Unavailable(
                    False,
                    "picamera2 is not installed",
                    "`sudo apt install python3-picamera2` and create the venv with --system-site-packages",
                ) from None
            raise _broken_picamera2(exc) from None
        except Exception as exc:  # the import ran picamera2's own code, which failed
            raise _broken_picamera2(exc) from None
    sys.stderr.write(noise.getvalue())
    return Picamera2


def _broken_picamera2(exc: Exception) -> Picamera2Unavailable:
    reason = f"picamera2 is installed but cannot be imported ({type(exc).__name__}: {exc})"
    if "numpy" not in str(exc):
        return Picamera2Unavailable(
            True,
            reason,
            "reinstall it with `sudo apt install --reinstall python3-picamera2 python3-libcamera`",
        )
    pip = f"{sys.executable} -m pip"
    if int(np.__version__.split(".")[0]) >= 2:
        fix = (
            f"a numpy {np.__version__} wheel in the venv shadows the system numpy 1.x its "
            f"compiled modules were built against: `{pip} install 'numpy<2'`"
        )
    else:
        fix = (
            f"numpy {np.__version__} ({os.path.dirname(np.__file__)}) is not the numpy its "
            f"compiled modules were built against: `{pip} uninstall numpy` to use the system's"
        )
    return Picamera2Unavailable(True, reason, fix)


def picamera_available() -> bool:
    """True when picamera2 can be imported (Raspberry Pi OS with python3-picamera2), False when
    it is not installed; a broken install raises Picamera2Unavailable naming the error."""
    try:
        import_picamera2()
    except Picamera2Unavailable as exc:
        if exc.installed:
            raise
        return False
    return True
