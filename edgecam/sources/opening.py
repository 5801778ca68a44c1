"""Which source a URI names, and opening it: a clear one-line error for a source that is
missing, unreadable or not allowed with the chosen detector."""

from __future__ import annotations

import logging
import os
import pwd
import stat
from pathlib import Path
from typing import Callable, Optional

import cv2

from ..errors import EdgecamError
from .base import IMAGE_SUFFIXES, REMUX_SCHEMES, STREAM_SCHEMES, Source, SourceSpec
from .files import ImageSource, VideoSource
from .live import LiveSource, OpenCVCapture
from .picamera import PicameraCapture, import_picamera2, picamera_available
from .stream import StreamCapture

log = logging.getLogger("edgecam.sources")

# What systemd's ProtectHome= hides from a service.
HOME_DIRS = ("/home", "/root", "/run/user")


def names_local_camera(uri: str) -> bool:
    """True for the [source] uri values naming a camera on this device: auto, picamera, an
    index, /dev/videoN (the doctor's camera check and open_source share this test)."""
    return uri in ("auto", "picamera") or uri.isdigit() or uri.startswith("/dev/video")


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


def open_source(
    spec: SourceSpec, on_status: Optional[Callable[[bool], None]] = None, sensor=None, recorder=None
) -> Source:
    """The Source for a spec's URI; an EdgecamError naming the URI and the choices if none fits.

    `sensor` (a camera that detects on its sensor, see PicameraCapture) needs the Pi camera.
    `recorder` records the camera's own H.264 for clips: the Pi camera's main stream through
    picamera2's encoder (clips.picamera.PicameraClipTap, see PicameraCapture), or an rtsp://
    stream's packets (clips.stream.StreamClipTap, see StreamCapture: the stream is then read
    through PyAV, not OpenCV); other sources ignore it.
    """
    quiet_video_libraries()
    uri = spec.uri.strip()
    if sensor is not None:
        if uri not in ("auto", "picamera"):
            raise EdgecamError(
                f"the {sensor.name} detects on the camera's own sensor, so it needs "
                f"--source picamera (not {uri}): use --detector cpu or hailo for "
                "other sources"
            )
        picamera2_class = import_picamera2()
        return LiveSource(
            "picamera",
            lambda: PicameraCapture(spec, picamera2_class, sensor, recorder),
            spec.stall_timeout,
            on_status,
        )
    if _names_camera(uri):  # the same test is_live() uses
        return _open_camera(uri, spec, on_status, recorder)
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
        raise EdgecamError(
            f"source not found: {uri} (give picamera, a camera index, /dev/videoN, "
            "an rtsp:// or http:// URL, a video file, an image or a folder)"
        ) from None
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
        return (
            f"{line}: the likely cause is the service's ProtectHome=, which hides "
            f"{', '.join(HOME_DIRS)} (home directories are private, too): keep the source "
            f"outside them, e.g. in /srv/edgecam, readable by {user}"
        )
    return f"{line}: let {user} read it and search every folder above it (chmod/chgrp)"


def _open_camera(
    uri: str, spec: SourceSpec, on_status: Optional[Callable[[bool], None]], recorder=None
) -> Source:
    if uri == "auto":
        if picamera_available():
            uri = "picamera"
        elif os.path.exists("/dev/video0"):
            uri = "/dev/video0"
        else:
            raise EdgecamError(
                "no camera found (picamera2 not installed, no /dev/video0): give "
                "--source picamera | N | /dev/videoN | rtsp://... | FILE | DIR"
            )
    if uri == "picamera":
        picamera2_class = import_picamera2()
        return LiveSource(
            "picamera",
            lambda: PicameraCapture(spec, picamera2_class, recorder=recorder),
            spec.stall_timeout,
            on_status,
        ).open_now("is it connected (`rpicam-hello --list-cameras`), or in use by another program?")
    if recorder is not None and uri.startswith(REMUX_SCHEMES):
        return LiveSource(uri, lambda: StreamCapture(uri, spec, recorder), spec.stall_timeout, on_status)
    source = LiveSource(uri, lambda: OpenCVCapture(uri, spec), spec.stall_timeout, on_status)
    if uri.startswith(STREAM_SCHEMES):
        return source  # a stream that is not up yet (a camera still booting) is waited for
    device = f"/dev/video{uri}" if uri.isdigit() else uri  # V4L2 opens index N as /dev/videoN
    if not os.path.exists(device):
        raise EdgecamError(
            f"camera {uri} does not exist{f' (no {device})' if device != uri else ''}: "
            "plug it in, or list cameras with `ls /dev/video*`"
        )
    return source.open_now(
        f"is it in use by another program (`fuser {device}`), or not a "
        "capture device? List them with `v4l2-ctl --list-devices`"
    )
