"""Frame sources: Pi camera, USB camera, RTSP/HTTP stream, video file, one image or a folder.

Every source yields Frames; live sources that fail are reopened with backoff and never end
the run, file sources end it when they run out (or repeat with `loop`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pwd
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Set, Tuple

import cv2
import numpy as np

from .config import names_local_camera
from .datatypes import Frame, SensorDetections
from .errors import EdgecamError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
# What systemd's ProtectHome= hides from a service.
HOME_DIRS = ("/home", "/root", "/run/user")


@dataclass(frozen=True)
class SourceSpec:
    """What to open: a URI and the capture settings that apply to it."""

    uri: str = "auto"
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    loop: bool = False
    stall_timeout: float = 5.0
    realtime: bool = False
    model_input_size: Optional[Tuple[int, int]] = None


class Source:
    """Base of all sources: `frames()` yields Frames until the source ends; `close()` stops it."""

    name = "source"
    live = False
    # True while a live source waits for its camera or stream to come back (the watchdog
    # keeps being fed then, though no frames arrive).
    reconnecting = False
    # Told when frames stop (False) or come back (True); only live sources ever call it.
    on_status: Optional[Callable[[bool], None]] = None

    def __init__(self):
        self._closed = threading.Event()
        self._seq = 0

    def frames(self) -> Iterator[Frame]:
        """Frames in capture order, each stamped with its capture time."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop producing frames (safe to call from another thread, and twice)."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed.is_set()

    def _frame(self, image: np.ndarray, model_input: Optional[np.ndarray] = None,
               detected: Optional[SensorDetections] = None, name: Optional[str] = None) -> Frame:
        f = Frame(self._seq, time.time(), time.monotonic(), image, name or self.name, model_input,
                  detected)
        self._seq += 1
        return f


def list_image_files(folder: Path) -> List[Path]:
    """Image files in a folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageSource(Source):
    """One image file or a folder of images (sorted by name).

    A folder's unreadable images are skipped with a warning, once per file however often the
    folder loops; a single named image that cannot be decoded is bad input, reported at open.
    """

    def __init__(self, path: Path, loop: bool = False):
        super().__init__()
        self.path, self.loop, self.name = path, loop, str(path)
        self._skipped: Set[Path] = set()
        if path.is_dir():
            self.files = list_image_files(path)
            if not self.files:
                raise EdgecamError(f"no images in folder {path} "
                                   f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            self.files = [path]
            # Decoded once up front so a bad file fails before the run starts, not as 0 frames.
            if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
                raise EdgecamError(f"cannot read image {path}: OpenCV cannot decode it (corrupt, "
                                   "truncated or not an image): give a JPEG, PNG, BMP, WebP, TIFF, "
                                   "PPM or PGM file, or a folder")

    def frames(self) -> Iterator[Frame]:
        while not self.closed:
            readable = 0
            for p in self.files:
                if self.closed:
                    return
                image = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if image is None:
                    if p not in self._skipped:
                        self._skipped.add(p)
                        log.warning("skipping unreadable image %s", p)
                    continue
                readable += 1
                yield self._frame(image, name=str(p))
            if not self.loop or not readable:
                return


DECODE_THREADS = 1


class VideoSource(Source):
    """A video file read frame by frame through OpenCV; `realtime` paces it at its own fps."""

    MAX_BAD_FRAMES = 25

    def __init__(self, path: Path, loop: bool = False, realtime: bool = False):
        super().__init__()
        self.path, self.loop, self.realtime, self.name = path, loop, realtime, str(path)
        self.live = realtime
        cap = self._open()
        cap.release()

    def _open(self):
        # One decoder thread: FFmpeg's default frame threads spend 50 % more CPU per frame
        # (measured 0.63 vs 0.41 ms at 640x480), CPU the interpreter needs, and one thread
        # still decodes far faster than any model here infers.
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, DECODE_THREADS])
        if not cap.isOpened():
            raise EdgecamError(f"cannot open video file {self.path}: not a video OpenCV can decode")
        return cap

    def frames(self) -> Iterator[Frame]:
        while not self.closed:
            cap = self._open()
            fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            start, produced, bad = time.monotonic(), 0, 0
            try:
                while not self.closed:
                    ok, image = cap.read()
                    if not ok or image is None:
                        pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)
                        bad += 1
                        if total and pos < total - 1 and bad < self.MAX_BAD_FRAMES:
                            log.warning("skipping unreadable frame %d of %s", pos, self.path)
                            cap.set(cv2.CAP_PROP_POS_FRAMES, pos + 1)
                            continue
                        break
                    bad = 0
                    if self.realtime:
                        # A wall clock at the file's fps: what a live camera would deliver.
                        due = start + produced / fps
                        delay = due - time.monotonic()
                        if delay > 0:
                            self._closed.wait(delay)
                    produced += 1
                    yield self._frame(image)
            finally:
                cap.release()
            if not self.loop or not produced:
                return


# One read of a CaptureDevice: the BGR image, the model-size image when the device makes one,
# and what a sensor that detects on its own (the IMX500) saw, None without one.
Captured = Tuple[np.ndarray, Optional[np.ndarray], Optional[SensorDetections]]


class CaptureDevice:
    """An opened live capture: `read()` returns one Captured (image, model_input, detected) or None."""

    name = "capture"

    def read(self) -> Optional[Captured]:
        """The next (image, model_input, detected), or None when the device failed."""
        raise NotImplementedError

    def release(self) -> None:
        """Free the device."""


class OpenCVCapture(CaptureDevice):
    """USB camera (index or /dev/videoN) or network stream through cv2.VideoCapture."""

    def __init__(self, uri: str, spec: SourceSpec):
        self.name = uri
        timeout_ms = int(spec.stall_timeout * 1000)
        if uri.startswith(STREAM_SCHEMES):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            self.cap = cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
        else:
            index = int(uri) if uri.isdigit() else uri
            self.cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
            if self.cap.isOpened():
                self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
                self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
                self.cap.set(cv2.CAP_PROP_FPS, spec.fps)
                # Keep the driver queue short so frames are fresh, not buffered.
                self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if not self.cap.isOpened():
            self.cap.release()
            raise OSError(f"cannot open {uri}")

    def read(self) -> Optional[Captured]:
        ok, image = self.cap.read()
        return (image, None, None) if ok and image is not None else None

    def release(self):
        self.cap.release()


class PicameraCapture(CaptureDevice):
    """The Raspberry Pi camera through picamera2: a main stream for output and a low-resolution
    stream at the model's input size, so the CPU does not resize the main frame.

    `sensor` is a camera that detects on its own sensor (edgecam.backends.imx500): it names the
    camera (`camera_num`), adds `controls()`, is told once the camera `started(cam)`, and
    `read(metadata, cam)` turns each frame's metadata into its SensorDetections (or None).
    """

    name = "picamera"

    def __init__(self, spec: SourceSpec, picamera2_class=None, sensor=None):
        cls = picamera2_class or import_picamera2()
        self.sensor = sensor
        self.cam = cls() if sensor is None else cls(sensor.camera_num)
        # "RGB888" in libcamera is B,G,R in memory: exactly OpenCV's BGR.
        streams = {"main": {"size": (spec.width, spec.height), "format": "RGB888"}}
        if spec.model_input_size and sensor is None:
            streams["lores"] = {"size": tuple(spec.model_input_size), "format": "YUV420"}
        controls = {"FrameRate": float(spec.fps), **(sensor.controls() if sensor else {})}
        try:
            config = self.cam.create_video_configuration(
                **streams, buffer_count=4, controls=controls)
            self.cam.configure(config)
            self.cam.start()
            # libcamera may have changed the size asked for; the buffers have the size it chose.
            self.lores_size = tuple(self.cam.stream_configuration("lores")["size"]) \
                if "lores" in streams else None
            if sensor is not None:
                sensor.started(self.cam)
        except BaseException:
            self.cam.close()  # a camera left open is "busy" for every retry after this one
            raise
        self.model_input_size = tuple(spec.model_input_size) if spec.model_input_size else None
        if self.lores_size and self.lores_size != self.model_input_size:
            log.info("libcamera made the low-resolution stream %dx%d instead of %dx%d: "
                     "resizing it to the model's input", *self.lores_size, *self.model_input_size)

    def read(self) -> Captured:
        names = ["main", "lores"] if self.lores_size else ["main"]
        arrays, metadata = self.cam.capture_arrays(names)
        lores = self._model_input(arrays[1]) if self.lores_size else None
        detected = self.sensor.read(metadata, self.cam) if self.sensor is not None else None
        return arrays[0][:, :, :3], lores, detected

    def _model_input(self, yuv: np.ndarray) -> np.ndarray:
        lores = yuv420_to_bgr(yuv, self.lores_size[0])
        if self.lores_size != self.model_input_size:
            lores = cv2.resize(lores, self.model_input_size, interpolation=cv2.INTER_AREA)
        return lores

    def release(self):
        try:
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
            from picamera2 import Picamera2  # type: ignore
        except ModuleNotFoundError as exc:
            if exc.name == "picamera2":
                raise Picamera2Unavailable(
                    False, "picamera2 is not installed", "`sudo apt install python3-picamera2` "
                    "and create the venv with --system-site-packages") from None
            raise _broken_picamera2(exc) from None
        except Exception as exc:  # the import ran picamera2's own code, which failed
            raise _broken_picamera2(exc) from None
    sys.stderr.write(noise.getvalue())
    return Picamera2


def _broken_picamera2(exc: Exception) -> Picamera2Unavailable:
    reason = f"picamera2 is installed but cannot be imported ({type(exc).__name__}: {exc})"
    if "numpy" not in str(exc):
        return Picamera2Unavailable(True, reason, "reinstall it with `sudo apt install --reinstall "
                                    "python3-picamera2 python3-libcamera`")
    pip = f"{sys.executable} -m pip"
    if int(np.__version__.split(".")[0]) >= 2:
        fix = (f"a numpy {np.__version__} wheel in the venv shadows the system numpy 1.x its "
               f"compiled modules were built against: `{pip} install 'numpy<2'`")
    else:
        fix = (f"numpy {np.__version__} ({os.path.dirname(np.__file__)}) is not the numpy its "
               f"compiled modules were built against: `{pip} uninstall numpy` to use the system's")
    return Picamera2Unavailable(True, reason, fix)


class DeadlineReader:
    """Reads a CaptureDevice on a thread of its own, so a read that hangs inside a driver
    (a camera that stops delivering) can be given up after a deadline instead of freezing
    the capture loop. A device given up on is released in the background."""

    def __init__(self, device: CaptureDevice):
        self.device = device
        self._asked, self._answered = threading.Event(), threading.Event()
        self._result = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"read-{device.name}")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            self._asked.wait()
            self._asked.clear()
            if self._abandoned:
                return
            try:
                self._result = self.device.read()
            except Exception as exc:  # a driver error is a lost frame, handled by reopening
                log.debug("reading %s failed: %s", self.device.name, exc)
                self._result = None
            self._answered.set()

    def read(self, timeout: float) -> Optional[Captured]:
        """The device's next (image, model_input, detected), or None on failure or after
        `timeout` s."""
        self._answered.clear()
        self._asked.set()
        if not self._answered.wait(timeout):
            self._abandoned = True
            return None
        return self._result

    def release(self) -> None:
        """Stop reading and free the device (in the background if a read is stuck in it)."""
        stuck = self._abandoned
        self._abandoned = True
        self._asked.set()
        if stuck:
            threading.Thread(target=_release_quietly, args=(self.device,), daemon=True).start()
        else:
            self._thread.join(1.0)
            _release_quietly(self.device)


def _release_quietly(device: CaptureDevice) -> None:
    try:
        device.release()
    except Exception:  # releasing a dead device may fail; it is gone either way
        pass


class LiveSource(Source):
    """A camera or stream that is reopened with backoff when it fails or stalls.

    Loss and recovery are logged once each; the run never ends because of a transient loss.
    `on_status(online: bool)` is told when frames stop or start arriving.
    """

    live = True
    BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

    def __init__(self, name: str, open_device: Callable[[], CaptureDevice], stall_timeout: float = 5.0,
                 on_status: Optional[Callable[[bool], None]] = None):
        super().__init__()
        self.name, self._open_device, self.stall_timeout = name, open_device, stall_timeout
        self.on_status = on_status
        self._device: Optional[CaptureDevice] = None
        self.losses = 0
        self.reconnecting = False

    def _try_open(self) -> Optional[CaptureDevice]:
        try:
            return self._open_device()
        except EdgecamError:
            raise
        except Exception as exc:  # any driver failure means "not yet"; retried with backoff
            log.debug("opening %s failed: %s", self.name, exc)
            return None

    def frames(self) -> Iterator[Frame]:
        try:
            yield from self._frames_with_reconnect()
        finally:  # also when the consumer stops iterating: the camera must be released
            self._drop_device()

    def _frames_with_reconnect(self) -> Iterator[Frame]:
        attempt, online = 0, None
        while not self.closed:
            if self._device is None:
                device = self._try_open()
                self._device = device and DeadlineReader(device)
            got = self._device.read(self.stall_timeout) if self._device else None
            if got is not None:
                if online is not True:
                    if online is False:
                        log.warning("source %s recovered after %d attempt(s)", self.name, attempt)
                    online, attempt = True, 0
                    self.reconnecting = False
                    self._tell(True)
                yield self._frame(*got)
                continue
            if online is not False:
                self.losses += 1
                log.warning("source %s lost: no frame within %.1f s; reopening with backoff",
                            self.name, self.stall_timeout)
                online = False
                self.reconnecting = True
                self._tell(False)
            self._drop_device()
            delay = self.BACKOFF[min(attempt, len(self.BACKOFF) - 1)]
            attempt += 1
            self._closed.wait(delay)

    def _drop_device(self):
        if self._device is not None:
            self._device.release()
            self._device = None

    def _tell(self, online: bool):
        if self.on_status:
            self.on_status(online)



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


def _names_camera(uri: str) -> bool:
    """True for the URIs open_source opens as a LiveSource (cameras and streams)."""
    return names_local_camera(uri) or uri.startswith(STREAM_SCHEMES)


def is_live(uri: str, realtime: bool = False) -> bool:
    """Whether a source URI names a camera or stream, whose frames come on their own clock;
    a video file counts as live only when `realtime` paces it. Opens nothing."""
    uri = uri.strip()
    if _names_camera(uri):
        return True
    path = Path(uri).expanduser()
    # os.path.isdir, not Path.is_dir: a folder this process may not read must not raise here.
    if os.path.isdir(path) or path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    return realtime


AV_LOG_QUIET = -8  # libavutil/log.h


def quiet_video_libraries() -> None:
    """Keep FFmpeg's and OpenCV's own lines (`[tcp @ 0x...] Connection refused`, `[ WARN:0@1.7]
    global cap.cpp...`) off stderr, where they would sit between edgecam's log lines: a lost
    stream is edgecam's one line about the loss and the retry. At debug level, or when the
    user set OPENCV_FFMPEG_LOGLEVEL / OPENCV_LOG_LEVEL, they are left as they are.

    Both settings are process-wide in the libraries. OpenCV reads OPENCV_FFMPEG_LOGLEVEL when
    it first opens FFmpeg, so this runs before any capture is opened.
    """
    if log.isEnabledFor(logging.DEBUG):
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", str(AV_LOG_QUIET))
    if "OPENCV_LOG_LEVEL" not in os.environ:
        # OpenCV 5 has the setter in cv2.utils.logging; 4.x (Bookworm's, the last with numpy-1
        # wheels) only as cv2.setLogLevel. Both number the levels alike: 2 is error.
        opencv_logging = getattr(cv2.utils, "logging", cv2)
        opencv_logging.setLogLevel(getattr(opencv_logging, "LOG_LEVEL_ERROR", 2))


def open_source(spec: SourceSpec, on_status: Optional[Callable[[bool], None]] = None,
                sensor=None) -> Source:
    """The Source for a spec's URI; an EdgecamError naming the URI and the choices if none fits.

    `sensor` (a camera that detects on its sensor, see PicameraCapture) needs the Pi camera.
    """
    quiet_video_libraries()
    uri = spec.uri.strip()
    if sensor is not None:
        if uri not in ("auto", "picamera"):
            raise EdgecamError(f"the {sensor.name} detects on the camera's own sensor, so it needs "
                               f"--source picamera (not {uri}): use --detector cpu or hailo for "
                               "other sources")
        picamera2_class = import_picamera2()
        return LiveSource("picamera", lambda: PicameraCapture(spec, picamera2_class, sensor),
                          spec.stall_timeout, on_status)
    if _names_camera(uri):  # the same test is_live() uses
        return _open_camera(uri, spec, on_status)
    path = Path(uri).expanduser()
    if stat.S_ISDIR(_readable_stat(uri, path).st_mode) or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, spec.loop)
    return VideoSource(path, spec.loop, spec.realtime)


def _readable_stat(uri: str, path: Path) -> os.stat_result:
    """The file or folder's stat, or an EdgecamError when it is missing or this process may
    not read it (a folder must also be searchable)."""
    try:
        st = path.stat()
    except PermissionError:
        raise EdgecamError(_permission_denied(path)) from None
    except OSError:
        raise EdgecamError(f"source not found: {uri} (give picamera, a camera index, /dev/videoN, "
                           "an rtsp:// or http:// URL, a video file, an image or a folder)") from None
    if not os.access(path, os.R_OK | (os.X_OK if stat.S_ISDIR(st.st_mode) else 0)):
        raise EdgecamError(_permission_denied(path))
    return st


def _permission_denied(path: Path) -> str:
    """The one line for a source this process may not read, with the likely cause."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = f"uid {os.geteuid()}"
    line = f"cannot read source {path}: permission denied for user {user}"
    real = os.path.realpath(path)
    in_home = any(real == d or real.startswith(d + "/") for d in HOME_DIRS)
    if "INVOCATION_ID" in os.environ or in_home:  # systemd sets INVOCATION_ID for a service
        return (f"{line}: the likely cause is the service's ProtectHome=, which hides "
                f"{', '.join(HOME_DIRS)} (home directories are private, too): keep the source "
                f"outside them, e.g. in /srv/edgecam, readable by {user}")
    return f"{line}: let {user} read it and search every folder above it (chmod/chgrp)"


def _open_camera(uri: str, spec: SourceSpec, on_status: Optional[Callable[[bool], None]]) -> Source:
    if uri == "auto":
        if picamera_available():
            uri = "picamera"
        elif os.path.exists("/dev/video0"):
            uri = "/dev/video0"
        else:
            raise EdgecamError("no camera found (picamera2 not installed, no /dev/video0): give "
                               "--source picamera | N | /dev/videoN | rtsp://... | FILE | DIR")
    if uri == "picamera":
        picamera2_class = import_picamera2()
        return LiveSource("picamera", lambda: PicameraCapture(spec, picamera2_class),
                          spec.stall_timeout, on_status)
    if not uri.startswith(STREAM_SCHEMES) and not uri.isdigit() and not os.path.exists(uri):
        raise EdgecamError(f"camera {uri} does not exist: plug it in, or list cameras with "
                           "`ls /dev/video*`")
    return LiveSource(uri, lambda: OpenCVCapture(uri, spec), spec.stall_timeout, on_status)
