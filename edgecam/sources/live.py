"""Live sources: a capture device (USB camera, network stream) read under a deadline, reopened
with backoff when it fails or stalls, so a transient loss never ends the run."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..datatypes import Frame, SensorDetections
from ..errors import EdgecamError
from .base import STREAM_SCHEMES, Source, SourceSpec

log = logging.getLogger("edgecam.sources")


# One read of a CaptureDevice: the BGR image, the model-size image when the device makes one,
# what a sensor that detects on its own (the IMX500) saw, None without one, and the capture
# time (unix s) when the device has a clock of its own (a stream's packet times), else None:
# the time it was read.
Captured = Tuple[np.ndarray, Optional[np.ndarray], Optional[SensorDetections], Optional[float]]


class CaptureDevice:
    """An opened live capture: `read()` returns one Captured (image, model_input, detected, ts)
    or None."""

    name = "capture"

    def read(self) -> Optional[Captured]:
        """The next (image, model_input, detected, ts), or None when the device failed."""
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
            raise OSError("OpenCV could not open it")

    def read(self) -> Optional[Captured]:
        ok, image = self.cap.read()
        return (image, None, None, None) if ok and image is not None else None

    def release(self):
        self.cap.release()


class DeadlineReader:
    """Reads a CaptureDevice on a thread of its own, so a read that hangs inside a driver
    (a camera that stops delivering) can be given up after a deadline instead of freezing
    the capture loop. A device given up on is released in the background."""

    def __init__(self, device: CaptureDevice):
        self.device = device
        self._asked, self._answered = threading.Event(), threading.Event()
        self._result: Optional[Captured] = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"read-{device.name}")
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
        """The device's next (image, model_input, detected, ts), or None on failure or after
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
    `on_status(online: bool)` is told when frames stop or start arriving. `backoff` is the wait
    before each reopening attempt, in seconds, the last one repeated (tests make it short).
    """

    live = True
    BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

    def __init__(
        self,
        name: str,
        open_device: Callable[[], CaptureDevice],
        stall_timeout: float = 5.0,
        on_status: Optional[Callable[[bool], None]] = None,
        backoff: Sequence[float] = BACKOFF,
    ):
        super().__init__()
        self.name, self._open_device, self.stall_timeout = name, open_device, stall_timeout
        self.on_status, self.backoff = on_status, tuple(backoff)
        self._device: Optional[DeadlineReader] = None
        self._reading = False  # frames() has started: only it may release the device then
        self.reconnecting = False

    def open_now(self, fix: str) -> "LiveSource":
        """Open the device once, here and now, for a camera that must work at start: one that
        never opened is bad input (an EdgecamError naming it, the driver's reason and `fix`),
        not a loss to retry. Only a camera that worked and then went away is reopened."""
        try:
            device = self._open_device()
        except EdgecamError:
            raise
        except Exception as exc:
            raise EdgecamError(f"camera {self.name} did not open ({exc}): {fix}") from None
        self._device = DeadlineReader(device)
        return self

    def _try_open(self) -> Optional[CaptureDevice]:
        try:
            return self._open_device()
        except EdgecamError:
            raise
        except Exception as exc:  # any driver failure means "not yet"; retried with backoff
            log.debug("opening %s failed: %s", self.name, exc)
            return None

    def close(self) -> None:
        """Stop producing frames; a device opened by open_now that frames() never took over is
        released here (a run whose setup failed after the source opened)."""
        super().close()
        if not self._reading:
            self._drop_device()

    def frames(self) -> Iterator[Frame]:
        self._reading = True
        try:
            yield from self._frames_with_reconnect()
        finally:  # also when the consumer stops iterating: the camera must be released
            self._drop_device()

    def _frames_with_reconnect(self) -> Iterator[Frame]:
        attempt, online = 0, None
        while not self.closed:
            if self._device is None:
                device = self._try_open()
                self._device = DeadlineReader(device) if device is not None else None
            got = self._device.read(self.stall_timeout) if self._device else None
            if got is not None:
                if online is not True:
                    if online is False:
                        log.warning("source %s recovered after %d attempt(s)", self.name, attempt)
                    online, attempt = True, 0
                    self.reconnecting = False
                    self._tell(True)
                image, model_input, detected, ts = got
                yield self._frame(image, model_input, detected, ts=ts)
                continue
            if online is not False:
                log.warning(
                    "source %s lost: no frame within %.1f s; reopening with backoff",
                    self.name,
                    self.stall_timeout,
                )
                online = False
                self.reconnecting = True
                self._tell(False)
            self._drop_device()
            delay = self.backoff[min(attempt, len(self.backoff) - 1)]
            attempt += 1
            self._closed.wait(delay)

    def _drop_device(self):
        if self._device is not None:
            self._device.release()
            self._device = None

    def _tell(self, online: bool):
        if self.on_status:
            self.on_status(online)
