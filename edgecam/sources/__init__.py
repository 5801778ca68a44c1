"""Frame sources: Pi camera, USB camera, RTSP/HTTP stream, video file, one image or a folder.

Every source yields Frames; live sources that fail are reopened with backoff and never end
the run, file sources end it when they run out (or repeat with `loop`).

One module per job: `base` (SourceSpec, the Source interface), `files` (images, folders,
video files), `live` (capture devices read under a deadline, reopened with backoff),
`picamera` (the Pi camera and the diagnosis of a broken picamera2), `stream` (an RTSP
stream through PyAV, its H.264 packets kept for clips), `opening` (which source
a URI names, and opening it). The names below are the package's interface.
"""

from .base import IMAGE_SUFFIXES, REMUX_SCHEMES, STREAM_SCHEMES, Source, SourceSpec
from .files import ImageSource, VideoSource, list_image_files
from .live import CaptureDevice, Captured, DeadlineReader, LiveSource, OpenCVCapture
from .opening import is_live, names_local_camera, open_source, quiet_video_libraries
from .stream import StreamCapture
from .picamera import (
    PicameraCapture,
    Picamera2Unavailable,
    import_picamera2,
    picamera_available,
    yuv420_to_bgr,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "REMUX_SCHEMES",
    "STREAM_SCHEMES",
    "Source",
    "SourceSpec",
    "ImageSource",
    "VideoSource",
    "list_image_files",
    "CaptureDevice",
    "Captured",
    "DeadlineReader",
    "LiveSource",
    "OpenCVCapture",
    "StreamCapture",
    "is_live",
    "names_local_camera",
    "open_source",
    "quiet_video_libraries",
    "PicameraCapture",
    "Picamera2Unavailable",
    "import_picamera2",
    "picamera_available",
    "yuv420_to_bgr",
]
