"""A real RTSP camera for tests: GStreamer's gst-rtsp-server serving a video file's own
packets at the file's rate, unchanged (an H.264 MP4 through `h264parse ! rtph264pay`, an
MJPEG AVI through `rtpjpegpay`), on 127.0.0.1.

Run by Debian's /usr/bin/python3 (its GObject bindings: python3-gi,
gir1.2-gst-rtsp-server-1.0), not the test venv's interpreter:

    /usr/bin/python3 tests/rtsp_server.py PORT FILE

Each client that connects gets the file from its start; at its end the stream ends (EOS), as
a camera that goes away. `RtspCamera` starts it as a subprocess for the tests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
MOUNT = "/cam"
PIPELINES = {
    ".mp4": "filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96",
    ".avi": "filesrc location={path} ! avidemux ! rtpjpegpay name=pay0 pt=26",
}


def available() -> str:
    """'' when the system Python can run the server, else why not (for a skip)."""
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"{SYSTEM_PYTHON}: {exc}"
    return "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


class RtspCamera:
    """The server as a subprocess serving `path` on 127.0.0.1:`port` (start/stop)."""

    def __init__(self, path: Path, port: int):
        self.path, self.port = path, port
        self.proc = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    def start(self) -> "RtspCamera":
        self.proc = subprocess.Popen([SYSTEM_PYTHON, __file__, str(self.port), str(self.path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the RTSP server exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the RTSP server did not start listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def serve(port: int, path: Path) -> None:
    """Serve `path` until killed."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {PIPELINES[path.suffix].format(path=path)} )")
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    GLib.MainLoop().run()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]).resolve())
