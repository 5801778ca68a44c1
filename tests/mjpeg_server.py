"""A real MJPEG-over-HTTP camera for tests: serves JPEG frames of a photo until stopped."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from mqtt_fixtures import free_port  # noqa: F401  (re-exported for the source tests)


class MjpegCamera:
    """Serves `image` as multipart/x-mixed-replace at `fps` on 127.0.0.1:port; start/stop repeatable."""

    def __init__(self, image, port: int, fps: float = 20.0):
        ok, buf = cv2.imencode(".jpg", image)
        assert ok
        self.jpeg, self.port, self.fps = buf.tobytes(), port, fps
        self.server = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegCamera":
        camera = self
        self._stopping.clear()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not camera._stopping.is_set():
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(camera.jpeg)).encode() + b"\r\n\r\n" + camera.jpeg + b"\r\n")
                        time.sleep(1 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
