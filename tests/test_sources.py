"""Sources: a live MJPEG camera that drops out and comes back, file sources that end."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import time

import cv2
import pytest

from edgecam.errors import EdgecamError
from edgecam.sources import CaptureDevice, LiveSource, SourceSpec, VideoSource, open_source

from conftest import COCO_LABELS, IMAGES, SSD_MODEL
from media import pan_frames, write_video
from mjpeg_server import MjpegCamera, free_port
from waiting import wait_until


# Reopening attempts every 0.1 s instead of LiveSource.BACKOFF's 0.5, 1, 2, ... s: a test
# waits for the camera to come back, not for the backoff.
FAST_BACKOFF = (0.1,)


@pytest.fixture
def camera():
    cam = MjpegCamera(cv2.imread(str(IMAGES / "pets.jpg")), free_port()).start()
    yield cam
    cam.stop()


def collect(source, until, out):
    for frame in source.frames():
        out.append((time.monotonic(), frame))
        if until():
            break


def test_live_stream_lost_and_recovered_is_logged_once_each(camera, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.sources")
    statuses = []
    source = open_source(SourceSpec(uri=camera.url, stall_timeout=1.0), on_status=statuses.append)
    assert isinstance(source, LiveSource) and source.live
    source.backoff = FAST_BACKOFF
    frames = []
    t = threading.Thread(target=collect, args=(source, lambda: len(frames) >= 400, frames), daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while len(frames) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(frames) >= 5, "no frames from the live camera"
    camera.stop()
    lost_at = time.monotonic()
    time.sleep(2.0)
    before = len(frames)
    camera.start()
    deadline = time.monotonic() + 15
    while len(frames) < before + 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    source.close()
    t.join(5)
    assert len(frames) >= before + 5, "frames did not resume after the camera came back"
    assert any(ts > lost_at + 2.0 for ts, _ in frames)
    assert statuses == [True, False, True]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("lost" in m for m in messages) == 1
    assert sum("recovered" in m for m in messages) == 1
    seqs = [f.seq for _, f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.fixture(scope="module")
def dropout_run(edgecam_cmd, tmp_path_factory):
    """One `edgecam run --json --track --watch dog` for 8 s on a camera that is away from 2.5 s
    to 4.5 s, shared by the tests that read it: (JSON lines, stderr)."""
    home = tmp_path_factory.mktemp("dropout")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env.update(EDGECAM_HOME=str(home / "home"), STATE_DIRECTORY=str(home / "state"))
    camera = MjpegCamera(cv2.imread(str(IMAGES / "pets.jpg")), free_port()).start()
    try:
        proc = subprocess.Popen([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels",
                                 str(COCO_LABELS), "--source", camera.url, "--json", "--duration", "8",
                                 # a still photo: its dogs never move (nor start, by default)
                                 "--track", "--watch", "dog", "--no-require-motion"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        camera.stop()
        time.sleep(2.0)
        camera.start()
        out, err = proc.communicate(timeout=30)
    finally:
        camera.stop()
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()], err


def test_run_survives_a_camera_dropout(dropout_run):
    lines, err = dropout_run
    frames = [line for line in lines if line["type"] == "frame"]
    times = [f["ts"] for f in frames]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) > 1.5, "the dropout should show as a gap"
    assert times[-1] - times[0] > 4, "frames must continue after the camera came back"
    assert all([d["label"] for d in f["detections"]] == ["dog", "dog"] for f in frames)
    assert "lost" in err and "recovered" in err


def test_video_source_ends_and_loops(tmp_path):
    video = write_video(tmp_path / "v.mp4", pan_frames(cv2.imread(str(IMAGES / "traffic.bmp")), 6))
    assert len(list(VideoSource(video).frames())) == 6
    looped = VideoSource(video, loop=True)
    frames = []
    for f in looped.frames():
        frames.append(f)
        if len(frames) == 15:
            looped.close()
    assert [f.seq for f in frames] == list(range(15))


def test_realtime_video_is_paced_like_a_camera(tmp_path):
    video = write_video(tmp_path / "v.mp4", pan_frames(cv2.imread(str(IMAGES / "traffic.bmp")), 10), fps=20)
    source = VideoSource(video, realtime=True)
    assert source.live
    stamps = [f.mono for f in source.frames()]
    assert stamps[-1] - stamps[0] >= 9 / 20 * 0.9


def test_corrupt_video_and_missing_camera_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(EdgecamError, match="cannot open video file"):
        open_source(SourceSpec(uri=str(bad)))
    with pytest.raises(EdgecamError, match="does not exist"):
        open_source(SourceSpec(uri="/dev/video42"))


def test_live_source_prints_no_line_per_frame(camera, edgecam_cmd, cli_env):
    out = subprocess.run([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
                          "--source", camera.url, "--duration", "2"],
                         env=cli_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("processed "), out.stdout
    assert int(lines[0].split()[1]) > 5


class SocketCamera:
    """Camera hardware stand-in that can hang: serves raw 64x48 frames over TCP and, when told,
    stops sending while keeping the connection open (what a wedged camera driver does)."""

    SHAPE = (48, 64, 3)

    def __init__(self):
        import socket
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.hang = threading.Event()
        self.connections = 0
        frame = cv2.resize(cv2.imread(str(IMAGES / "pets.jpg")), (64, 48))
        self.payload = frame.tobytes()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            while True:
                if self.hang.is_set():
                    time.sleep(0.05)  # connection open, nothing sent
                    continue
                try:
                    conn.sendall(self.payload)
                except OSError:
                    return
                time.sleep(0.02)

    def open_device(self):
        import socket
        import numpy as np
        from edgecam.sources import CaptureDevice
        sock = socket.create_connection(("127.0.0.1", self.port))
        size = len(self.payload)

        class Device(CaptureDevice):
            name = "socket-camera"

            def read(self):
                buf = bytearray()
                while len(buf) < size:  # blocks for ever when the camera hangs
                    chunk = sock.recv(size - len(buf))
                    if not chunk:
                        return None
                    buf += chunk
                return np.frombuffer(bytes(buf), np.uint8).reshape(SocketCamera.SHAPE), None, None, None

            def release(self):
                sock.close()
        return Device()


def test_a_camera_that_hangs_is_given_up_after_the_stall_timeout_and_reopened(caplog):
    caplog.set_level(logging.INFO, logger="edgecam.sources")
    cam = SocketCamera()
    statuses = []
    source = LiveSource("socket-camera", cam.open_device, stall_timeout=0.5, on_status=statuses.append,
                        backoff=FAST_BACKOFF)
    frames = []
    done = threading.Event()

    def consume():
        for frame in source.frames():
            frames.append(time.monotonic())
            if done.is_set():
                break
    t = threading.Thread(target=consume, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while len(frames) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    cam.hang.set()
    assert wait_until(lambda: False in statuses, 10), "the hang is noticed after the stall timeout"
    hung_count = len(frames)
    cam.hang.clear()
    deadline = time.monotonic() + 10
    while len(frames) < hung_count + 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    done.set()
    source.close()
    t.join(5)
    assert len(frames) >= hung_count + 5, "frames must resume on a reopened device"
    assert statuses[:3] == [True, False, True]
    assert cam.connections >= 2, "the hung device was given up and a new one opened"
    assert sum("lost" in r.getMessage() for r in caplog.records) == 1


def test_tracks_end_when_the_camera_goes_offline(dropout_run):
    lines, _ = dropout_run
    events = [e for e in lines if e["type"] == "event"]
    kinds = [(e["event"], e["reason"]) for e in events if e["event"] in ("start", "end")]
    # Two dogs seen, both ended by the outage, seen again after it, ended at shutdown.
    assert kinds == [("start", None)] * 2 + [("end", "camera_offline")] * 2 \
        + [("start", None)] * 2 + [("end", "shutdown")] * 2, kinds


class StillCamera(CaptureDevice):
    """A camera that gives `frames` copies of a photo, then nothing (it went away)."""

    def __init__(self, frames=10**9):
        self.left, self.released = frames, False
        self.image = cv2.imread(str(IMAGES / "pets.jpg"))

    def read(self):
        self.left -= 1
        return (self.image, None, None, None) if self.left >= 0 else None

    def release(self):
        self.released = True


def test_a_camera_that_never_opened_is_bad_input_not_retried():
    attempts = []

    def never_opens():
        attempts.append(1)
        raise OSError("OpenCV could not open it")
    source = LiveSource("/dev/video3", never_opens, backoff=FAST_BACKOFF)
    with pytest.raises(EdgecamError) as raised:
        source.open_now("plug it in")
    assert str(raised.value) == "camera /dev/video3 did not open (OpenCV could not open it): plug it in"
    assert attempts == [1]


def test_a_camera_that_opened_at_start_and_went_away_is_reopened():
    cameras, opened, statuses = [StillCamera(frames=3), StillCamera()], [], []

    def open_device():
        opened.append(cameras[len(opened)])
        return opened[-1]
    source = LiveSource("cam", open_device, stall_timeout=0.5, on_status=statuses.append,
                        backoff=FAST_BACKOFF).open_now("plug it in")
    assert opened == cameras[:1], "opened at once, before any frame is asked for"
    frames = source.frames()
    seen = [next(frames) for _ in range(6)]  # 3 from the first camera, 3 after reopening
    frames.close()
    assert [f.seq for f in seen] == list(range(6)) and opened == cameras
    assert statuses == [True, False, True]
    assert cameras[0].released and cameras[1].released


def test_a_camera_opened_at_start_is_released_when_its_frames_are_never_read():
    camera = StillCamera()
    source = LiveSource("cam", lambda: camera).open_now("plug it in")
    source.close()  # the run's setup failed after the source opened
    assert camera.released


def test_live_sources_are_told_from_files_without_opening_them(tmp_path):
    from edgecam.sources import is_live
    for uri in ("auto", "picamera", "0", "/dev/video2", "rtsp://cam/stream", "http://cam/video.mjpg"):
        assert is_live(uri), uri
    video = tmp_path / "clip.mp4"
    assert not is_live(str(video)) and is_live(str(video), realtime=True)
    assert not is_live(str(IMAGES)) and not is_live(str(IMAGES / "pets.jpg"), realtime=True)


EDGECAM_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ +edgecam(\.\w+)*: ")


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_an_unreachable_stream_leaves_only_edgecam_lines_on_stderr(edgecam_cmd, cli_env, scheme):
    port = free_port()  # nothing listens there: every connection is refused
    out = subprocess.run([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
                          "--source", f"{scheme}://127.0.0.1:{port}/stream", "--duration", "4"],
                         env=cli_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines and all(EDGECAM_LOG_LINE.match(line) for line in lines), out.stderr
    assert sum("lost" in line for line in lines) == 1, out.stderr
