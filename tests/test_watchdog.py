"""The systemd watchdog during a camera's slow start: fed while the camera is busy starting,
starved once frames stop for good."""

from __future__ import annotations

import socket
import time

import cv2

from edgecam.detector import Detector

from conftest import COCO_LABELS, IMAGES, SSD_MODEL


def test_watchdog_is_fed_while_the_camera_is_busy_starting(notify_listener):
    """After READY, a re-upload (no frames for a while) keeps WATCHDOG=1 coming; once it is
    over and frames still do not come, the pings stop, so a dead camera is restarted."""
    import threading

    from edgecam.app import supervise
    from edgecam.pipeline import Pipeline
    from edgecam.sources import Source
    sock, address = notify_listener
    busy = threading.Event()

    class OneFrameThenSilence(Source):
        live, name = True, "camera"

        def frames(self):
            yield self._frame(cv2.imread(str(IMAGES / "pets.jpg")))
            busy.set()  # the camera now re-uploads its firmware: no frames meanwhile
            self._closed.wait()

    detector = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1)
    pipeline = Pipeline(OneFrameThenSilence(), [detector], [], drop=True)
    stop = threading.Event()
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}  # pings every 0.25 s at most
    runner = threading.Thread(target=supervise, args=(pipeline, stop, None, env,
                                                      lambda: "uploading" if busy.is_set() else None))
    runner.start()
    try:
        received, deadline = [], time.monotonic() + 30
        sock.settimeout(0.5)
        while time.monotonic() < deadline and not any(m.startswith("READY=1") for _, m in received):
            try:
                received.append((time.monotonic(), sock.recv(4096).decode()))
            except socket.timeout:
                pass
        assert busy.wait(10)

        def pings(seconds):
            out, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    out += sock.recv(4096).decode() == "WATCHDOG=1"
                except socket.timeout:
                    pass
            return out
        assert pings(2.0) >= 4, "fed while busy, though no frame is processed"
        busy.clear()
        pings(0.6)  # one in flight may still arrive
        assert pings(1.5) == 0, "no frames and nothing starting: the watchdog must starve"
    finally:
        stop.set()
        runner.join(30)
