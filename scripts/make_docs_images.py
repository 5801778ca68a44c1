#!/usr/bin/env python3
"""Render the two pictures of the docs from a synthetic scene, drawn here with OpenCV:

- docs/annotated.png: the scene as edgecam's annotator draws a frame's detections;
- docs/preview.png: the live preview page (`edgecam.web`) in headless Chromium, fed with the
  scene (a person walking past a parked car) frame by frame.

The scene is made of drawn shapes, not photos, so nothing from ../shared is in the pictures
(they are committed). The SSD model finds nothing sure in drawn shapes, so the boxes are the
scene's own ground truth, given to edgecam's real annotator and preview server as a frame's
detections (score 1.00). Needs chromium + chromium-driver and selenium (pip install -e '.[test]').

    python scripts/make_docs_images.py [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the tests' headless Chromium helper

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from browser import chromium  # noqa: E402
from edgecam.annotate import Annotator, draw, overlay_text  # noqa: E402
from edgecam.datatypes import BBox, Detection, Frame, FrameResult  # noqa: E402
from edgecam.stats import PipelineStats  # noqa: E402
from edgecam.web import WebSink  # noqa: E402

SIZE = (640, 360)
MAX_BYTES = 150_000
PERSON, CAR = (0, "person"), (2, "car")  # COCO class ids of the default label map


def _sky_and_ground(w: int, h: int, horizon: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    t = np.linspace(0, 1, horizon)[:, None]
    img[:horizon] = (np.array([235, 205, 160]) * (1 - t) + np.array([250, 235, 215]) * t)[:, None, :]
    img[horizon:] = (88, 150, 96)
    rng = np.random.default_rng(7)  # blades of grass, the same every run
    for x, y in zip(rng.integers(0, w, 400), rng.integers(horizon + 4, h, 400)):
        cv2.line(img, (int(x), int(y)), (int(x) + 2, int(y) - 5), (70, 130, 80), 1)
    return img


def _house(img: np.ndarray) -> None:
    cv2.rectangle(img, (30, 120), (230, 245), (95, 125, 190), cv2.FILLED)
    cv2.fillPoly(img, [np.array([[18, 126], [130, 58], [242, 126]])], (60, 60, 120))
    for x in (52, 168):
        cv2.rectangle(img, (x, 145), (x + 40, 185), (235, 225, 180), cv2.FILLED)
        cv2.rectangle(img, (x, 145), (x + 40, 185), (60, 60, 60), 2)
    cv2.rectangle(img, (112, 175), (148, 245), (40, 60, 100), cv2.FILLED)


def _tree(img: np.ndarray, x: int) -> None:
    cv2.rectangle(img, (x - 6, 180), (x + 6, 240), (40, 70, 100), cv2.FILLED)
    for dx, dy, r in ((0, 150, 34), (-22, 172, 24), (22, 172, 24)):
        cv2.circle(img, (x + dx, dy), r, (60, 120, 60), cv2.FILLED)


def _car(img: np.ndarray, x: int, y: int) -> Tuple[int, int, int, int]:
    """A side view with its lower-left corner at (x, y); returns its box in pixels."""
    body = (40, 40, 190)
    cv2.rectangle(img, (x, y - 55), (x + 210, y - 12), body, cv2.FILLED)
    cv2.fillPoly(img, [np.array([[x + 38, y - 54], [x + 68, y - 92], [x + 152, y - 92], [x + 186, y - 54]])], body)
    glass = (210, 190, 160)
    cv2.fillPoly(img, [np.array([[x + 50, y - 56], [x + 74, y - 86], [x + 106, y - 86], [x + 106, y - 56]])], glass)
    cv2.fillPoly(img, [np.array([[x + 114, y - 56], [x + 114, y - 86], [x + 148, y - 86], [x + 174, y - 56]])], glass)
    for cx in (x + 48, x + 164):
        cv2.circle(img, (cx, y - 12), 20, (25, 25, 25), cv2.FILLED)
        cv2.circle(img, (cx, y - 12), 8, (170, 170, 170), cv2.FILLED)
    return x, y - 92, x + 210, y + 8


def _person(img: np.ndarray, cx: int, feet: int, step: float) -> Tuple[int, int, int, int]:
    """A walker, feet at `feet`, legs apart by `step` (-1..1); returns the box in pixels."""
    skin, shirt, trousers = (130, 170, 220), (160, 70, 40), (70, 55, 45)
    top = feet - 150
    cv2.circle(img, (cx, top + 16), 15, skin, cv2.FILLED)
    cv2.rectangle(img, (cx - 19, top + 34), (cx + 19, top + 95), shirt, cv2.FILLED)
    swing = int(14 * step)
    cv2.line(img, (cx - 17, top + 40), (cx - 24 - swing, top + 92), skin, 9)
    cv2.line(img, (cx + 17, top + 40), (cx + 24 + swing, top + 92), skin, 9)
    cv2.line(img, (cx - 9, top + 95), (cx - 9 - swing, feet), trousers, 13)
    cv2.line(img, (cx + 9, top + 95), (cx + 9 + swing, feet), trousers, 13)
    return cx - 33, top, cx + 33, feet + 6


def scene(t: float) -> Tuple[np.ndarray, List[Detection]]:
    """The scene at time `t` (0..1: the walker crosses from left to right) and its ground truth."""
    w, h = SIZE
    img = _sky_and_ground(w, h, 232)
    _house(img)
    _tree(img, 290)
    cv2.fillPoly(img, [np.array([[380, h], [420, 232], [470, 232], [w, h]])], (130, 130, 135))
    boxes = [(CAR, _car(img, 400, 330)),
             (PERSON, _person(img, int(120 + t * 220), 335, float(np.sin(t * 24))))]
    detections = [Detection(label, cid, 1.0, BBox(x1 / w, y1 / h, min(x2 / w, 1.0), min(y2 / h, 1.0)))
                  for (cid, label), (x1, y1, x2, y2) in boxes]
    return img, detections


def save_png(path: Path, image: np.ndarray) -> int:
    """Write `image` as PNG; refuse one over MAX_BYTES (these are committed); returns its size."""
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok or len(buf) > MAX_BYTES:
        raise SystemExit(f"{path}: {'cannot encode' if not ok else f'{len(buf)} bytes > {MAX_BYTES}'}")
    path.write_bytes(buf.tobytes())
    return len(buf)


def annotated(out: Path) -> None:
    """docs/annotated.png: one frame of the scene, drawn as `edgecam run --output` draws it."""
    image, detections = scene(0.55)
    drawn = draw(image, detections, overlay_text(10.0, 0.0) + " | ground truth")
    size = save_png(out / "annotated.png", drawn)
    print(f"{out / 'annotated.png'}: {len(detections)} boxes, {size // 1024} KB")


def play(sink: WebSink, stats: PipelineStats, stop: threading.Event) -> None:
    """Hand the sink the scene at 10 fps, as the pipeline would, until `stop`."""
    seq = 0
    while not stop.wait(0.1):
        image, detections = scene((seq % 40) / 40)
        frame = Frame(seq, time.time(), time.monotonic(), image, "synthetic scene")
        stats.captured += 1
        stats.processed += 1
        stats.fps.tick()
        stats.inference_ms.add(0.0)
        sink.handle(FrameResult(frame, tuple(detections), 0.0))
        seq += 1


def preview(out: Path) -> None:
    """docs/preview.png: the preview page while the scene plays."""
    stats = PipelineStats()
    sink = WebSink("127.0.0.1:0", Annotator(stats.fps.rate), stats=lambda: stats)
    stop = threading.Event()
    player = threading.Thread(target=play, args=(sink, stats, stop), daemon=True)
    player.start()
    with tempfile.TemporaryDirectory() as tmp:
        driver = chromium(Path(tmp) / "profile", 1000, 560)
        try:
            driver.get(sink.url)
            deadline = time.monotonic() + 30
            while driver.find_element("id", "state").text != "live":
                if time.monotonic() > deadline:
                    raise SystemExit("the preview page never went live")
                time.sleep(0.2)
            time.sleep(5.5)  # a few seconds of fps for the stats; the walker at mid-way
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
            stop.set()
            player.join(5)
            sink.close()
    size = save_png(out / "preview.png", cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR))
    print(f"{out / 'preview.png'}: {size // 1024} KB")


def main(argv=None) -> int:
    """Render both pictures into --out; 0 when done."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs (default docs/)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    annotated(out)
    preview(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
