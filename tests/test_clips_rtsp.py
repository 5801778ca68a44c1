"""Clips from an RTSP camera, for real: GStreamer's RTSP server (tests/rtsp_server.py) serves an
H.264 MP4 made from real frames on 127.0.0.1, and `edgecam run --clips` records from it.

The clip holds the camera's own packets, byte for byte (nothing re-encoded: an encoder fed
the decoded frames could not give the same bytes), decodes back to the served stream's frames,
spans pre-roll + event + post-roll, and the `end` event names it. A stream that cannot be
remuxed (MJPEG over RTSP, H.264 with B-frames) is said once in the log and its clips are
encoded by x264.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

import scenes as tv
from conftest import COCO_LABELS, SSD_MODEL
from mqtt_fixtures import free_port
from rtsp_server import RtspCamera, available

FPS = 10
PRE, POST = 1.0, 1.0
SIZE = (640, 480)
RUN_S = 12  # longer than the served file (9 s): the stream ends and is reopened


def cat_frames():
    """2 s of an empty scene, a cat walking across it for 3 s, 4 s of the empty scene."""
    return tv.cat_frames(still_before=20, moving=30, still_after=40, size=SIZE)


def write_h264(path: Path, frames, b_frames: int = 0) -> Path:
    """An H.264 MP4 as a camera sends it: x264, a keyframe a second, no B-frames unless asked."""
    options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(FPS)}
    if b_frames:
        options = {"preset": "fast", "bf": str(b_frames), "g": str(FPS)}
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = *SIZE, "yuv420p"
        s.codec_context.options = options
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def write_mjpeg(path: Path, frames) -> Path:
    """An MJPEG AVI: what an RTSP camera that sends no H.264 sends."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=FPS)
        s.width, s.height, s.pix_fmt = *SIZE, "yuvj420p"
        for f in frames:
            frame = av.VideoFrame.from_ndarray(f, format="bgr24").reformat(format="yuvj420p")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def record(tmp: Path, video: Path):
    """`edgecam run --track --watch cat --clips` on the RTSP camera serving `video` for RUN_S
    seconds; (end events, clips folder, stderr)."""
    if available():
        pytest.fail(f"the RTSP server cannot run ({available()}): scripts/test installs "
                    "gir1.2-gst-rtsp-server-1.0, python3-gi and gstreamer1.0-plugins-good/-bad")
    camera = RtspCamera(video, free_port()).start()
    folder = tmp / "clips"
    env = dict(os.environ, EDGECAM_HOME=str(tmp / "home"), STATE_DIRECTORY=str(tmp / "state"),
               EDGECAM_CLIPS__PRE_ROLL=str(PRE), EDGECAM_CLIPS__POST_ROLL=str(POST))
    env.pop("NOTIFY_SOCKET", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edgecam", "run", "--model", str(SSD_MODEL), "--labels",
             str(COCO_LABELS), "--source", camera.url, "--threads", "1", "--track", "--watch", "cat",
             "--clips", str(folder), "--json", "--duration", str(RUN_S)],
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        camera.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return [e for e in lines if e.get("type") == "event" and e["event"] == "end"], folder, proc.stderr


@pytest.fixture(scope="module")
def h264_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rtsp")
    video = write_h264(tmp / "camera.mp4", cat_frames())
    ends, folder, stderr = record(tmp, video)
    return video, ends, folder, stderr


def samples(path: Path):
    """Each video packet of an MP4 as its NAL units (AVCC), parameter sets left out (a clip
    carries them in its first packet where the camera's file has them in its header)."""
    out = []
    with av.open(str(path)) as c:
        for p in c.demux(video=0):
            data, nals, i = bytes(p), [], 0
            while i + 4 <= len(data):
                n = int.from_bytes(data[i:i + 4], "big")
                nal = data[i + 4:i + 4 + n]
                if nal[0] & 0x1F not in (7, 8):
                    nals.append(nal)
                i += 4 + n
            if nals:
                out.append(tuple(nals))
    return out


def decode(path: Path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def first_clip(ends):
    assert ends, "no end event"
    end = ends[0]
    assert end["clip"] and end["reason"] != "shutdown", end
    return end


def test_the_end_event_names_a_clip_of_pre_roll_event_post_roll(h264_run):
    _, ends, folder, stderr = h264_run
    end = first_clip(ends)
    clip = folder / end["clip"]
    assert clip.exists() and not [p for p in folder.iterdir() if p.name.endswith(".part")]
    side = json.loads(clip.with_suffix(".json").read_text())
    expected = end["last_seen"] - end["first_seen"] + PRE + POST
    assert end["clip_seconds"] == pytest.approx(expected, abs=0.02)
    assert side["seconds"] == pytest.approx(expected, abs=1.0 / FPS + 1e-3)
    assert side["start"] == pytest.approx(end["first_seen"] - PRE, abs=1e-3)
    # The frames are matched to their packets by time (one time for both): the track's boxes.
    boxes = [b for f in side["frames"] for b in f["boxes"] if b["id"] == end["id"]]
    assert len(boxes) >= 10 and boxes[-1]["box"] == pytest.approx(end["box"], abs=1e-3)
    # The stream ended with the file and was reopened, as any live source.
    assert "recovered" in stderr


def test_the_clip_is_the_cameras_own_packets(h264_run):
    video, ends, folder, stderr = h264_run
    clip = folder / first_clip(ends)["clip"]
    served, recorded = samples(video), samples(clip)
    assert len(recorded) >= (2 * PRE + 2.0) * FPS
    start = served.index(recorded[0])
    assert recorded == served[start:start + len(recorded)]
    side = json.loads(clip.with_suffix(".json").read_text())
    assert side["encoder"] == "camera H.264, remuxed"
    assert "own H.264 (640x480) as it comes: no encoder runs" in stderr
    assert "encodes its clips itself" not in stderr


def test_the_clip_decodes_to_the_served_frames(h264_run):
    video, ends, folder, _ = h264_run
    clip = folder / first_clip(ends)["clip"]
    served, recorded = samples(video), samples(clip)
    start = served.index(recorded[0])  # the clip's first packet (its pre-roll keyframe)
    source = decode(video)
    frames = decode(clip)
    # Shown from the asked-for start: the edit list skips the keyframe's earlier frames.
    skipped = len(recorded) - len(frames)
    assert 0 <= skipped < FPS
    for i, image in enumerate(frames):
        assert np.array_equal(image, source[start + skipped + i]), i


@pytest.mark.parametrize("kind, why", [("mjpeg", "(mjpeg, not H.264)"),
                                       ("b-frames", "(h264, it has B-frames)")])
def test_a_stream_that_cannot_be_remuxed_is_encoded_and_said_once(tmp_path, kind, why):
    if kind == "mjpeg":
        video = write_mjpeg(tmp_path / "camera.avi", cat_frames())
    else:  # packets out of display order: an MP4 made of them as they come would not play
        video = write_h264(tmp_path / "camera.mp4", cat_frames(), b_frames=2)
    ends, folder, stderr = record(tmp_path, video)
    end = first_clip(ends)
    side = json.loads((folder / end["clip"]).with_suffix(".json").read_text())
    assert side["encoder"] == "libx264 ultrafast"
    assert side["seconds"] == pytest.approx(end["last_seen"] - end["first_seen"] + PRE + POST,
                                            abs=1.0 / FPS + 1e-3)
    said = [line for line in stderr.splitlines() if "cannot be remuxed" in line]
    assert len(said) == 1 and f"{why}: edgecam encodes its clips itself" in said[0], stderr
    assert "recovered" in stderr  # said once, though the stream was opened twice
