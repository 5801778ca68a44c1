"""Closing the preview server over real sockets: it ends the streams (a stalled one too),
releases the port and leaves no thread behind, well within the SIGTERM budget."""

from __future__ import annotations

import socket
import threading
import time

import cv2
import pytest

from conftest import IMAGES
from edgecam.annotate import Annotator
from edgecam.datatypes import Frame, FrameResult
from edgecam.web import WebSink

TOKEN = "t0ken"


def server_threads():
    return {t for t in threading.enumerate() if t.name.startswith("edgecam-web")}


@pytest.fixture
def feeding():
    """Start feeding frames of a real photo to a sink at ~30 fps; yields start(sink)."""
    image = cv2.resize(cv2.imread(str(IMAGES / "pets.jpg")), (640, 480))
    stop = threading.Event()

    def start(sink):
        def run():
            seq = 0
            while not stop.is_set():
                seq += 1
                sink.handle(FrameResult(Frame(seq, time.time(), time.monotonic(), image), (), 1.0))
                time.sleep(0.03)
        threading.Thread(target=run, daemon=True).start()

    yield start
    stop.set()


def test_close_ends_streams_releases_the_port_and_leaves_no_thread(feeding):
    before = server_threads()
    sink = WebSink("127.0.0.1:0", Annotator(), token=TOKEN, max_streams=2, send_timeout=5.0)
    host, port = sink.server.server_address[:2]
    feeding(sink)
    reader = socket.create_connection((host, port), timeout=10)
    reader.sendall(f"GET /stream.mjpg?token={TOKEN} HTTP/1.0\r\n\r\n".encode())
    received = []

    def read():
        try:
            while True:
                data = reader.recv(1 << 16)
                received.append(len(data))
                if not data:
                    return
        except OSError:
            received.append(-1)

    threading.Thread(target=read, daemon=True).start()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
    stalled.connect((host, port))
    stalled.sendall(f"GET /stream.mjpg?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(50)]
    try:
        # A megabyte of frames to the reader: by then the stalled viewer's socket buffers
        # are full and its sender is blocked.
        deadline = time.monotonic() + 20
        while (sink.hub.viewers < 2 or sum(received) < 1_000_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.hub.viewers == 2 and sum(received) >= 1_000_000
        t0 = time.monotonic()
        sink.close()
        took = time.monotonic() - t0
        assert took < 2.0, f"close took {took:.2f} s"  # app.py leaves 5 s for the whole SIGTERM
        deadline = time.monotonic() + 5
        while received[-1] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received[-1] <= 0, "the stream did not end"
        assert not server_threads() - before, "a server thread outlived close()"
        assert sink.hub.viewers == 0
        with socket.socket() as again:  # the listening socket is closed
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind((host, port))
    finally:
        for s in (reader, stalled, *idle):
            s.close()
