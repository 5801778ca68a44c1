"""Clips from the Pi camera: picamera2's own H264Encoder records the main stream (with the
stand-in camera, which encodes its real frames with libx264 through PyAV as picamera2's
LibavH264Encoder does on a Pi 5); edgecam encodes nothing itself and the model still reads
the lores stream. The clip is the main stream at its size, its frames the camera's."""

from __future__ import annotations

import json
import math

import av
import cv2
import numpy as np

from accelerator_fixtures import run_edgecam
from conftest import COCO_LABELS, IMAGES, SSD_MODEL


def psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def test_picamera2_encoder_records_the_main_stream(standin, tmp_path):
    env = standin(camera="imx708", scene=str(IMAGES / "pets.jpg"))
    config = tmp_path / "c.toml"
    config.write_text("[clips]\npre_roll = 1.0\npost_roll = 1.0\n")
    folder = tmp_path / "clips"
    proc = run_edgecam(env, "--config", str(config), "--model", str(SSD_MODEL), "--labels",
                       str(COCO_LABELS), "--source", "picamera", "--width", "640", "--height",
                       "480", "--fps", "10", "--threads", "1", "--track", "--watch", "dog",
                       "--no-require-motion",  # a still scene: its dogs never move
                       "--clips", str(folder), "--duration", "6", "--json",
                       "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "picamera2 LibavH264Encoder encodes the camera's main stream 640x480" in proc.stderr
    ends = [e for e in map(json.loads, proc.stdout.splitlines())
            if e.get("type") == "event" and e["event"] == "end"]
    assert ends and all(e["label"] == "dog" for e in ends)
    clip = folder / ends[0]["clip"]
    side = json.loads(clip.with_suffix(".json").read_text())
    assert side["encoder"] == "picamera2 LibavH264Encoder"
    assert (side["width"], side["height"]) == (640, 480)
    with av.open(str(clip)) as c:
        frames = [(float(f.time), f.to_ndarray(format="bgr24")) for f in c.decode(video=0)]
    assert len(frames) >= 20
    # The camera's main stream: the scene at 640x480, not the model's 300x300 lores.
    main = cv2.resize(cv2.imread(str(IMAGES / "pets.jpg")), (640, 480), interpolation=cv2.INTER_AREA)
    assert all(img.shape == (480, 640, 3) for _, img in frames)
    assert min(psnr(img, main) for _, img in frames) >= 30
    # Timed by the sensor: frames 1/FrameRate apart (10 fps), as the camera delivered them.
    gaps = np.diff([t for t, _ in frames])
    assert abs(float(np.median(gaps)) - 0.1) < 0.02
    # The boxes of the dogs' tracks are matched to the encoder's frames by time.
    boxed = [f for f in side["frames"] if f["boxes"]]
    assert len(boxed) >= 5 and {b["id"] for f in boxed for b in f["boxes"]} >= {ends[0]["id"]}
