#!/usr/bin/env python3
"""Regenerate the README's images from our own output, with the real model:

- docs/preview.png: the live preview page (`edgecam.web`) in headless Chromium, fed by the
  real pipeline on a clip made from ../shared/images/grace_hopper.bmp;
- docs/annotated.png: ../shared/images/kite_and_cold.jpg as the detector annotates it.

Each is kept under 300 KB. Needs chromium + chromium-driver and selenium (pip install -e '.[test]').

    python scripts/make_docs_images.py [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the browser and media helpers of the tests

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from browser import chromium, person_frame  # noqa: E402
from edgecam.annotate import Annotator, draw  # noqa: E402
from edgecam.datatypes import Frame  # noqa: E402
from edgecam.detector import Detector  # noqa: E402
from edgecam.pipeline import Pipeline, PipelineStats  # noqa: E402
from edgecam.sources import VideoSource  # noqa: E402
from edgecam.web import WebSink  # noqa: E402
from media import write_video  # noqa: E402

SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "ssd_mobilenet_v1_coco_quant.tflite"
LABELS = SHARED / "models" / "coco_labels.txt"
MAX_BYTES = 300_000


def save_png(path: Path, image) -> int:
    """Write `image` as PNG (5 bits per channel: photos compress far better, and look the
    same), shrinking it step by step until it is under MAX_BYTES; returns the byte size."""
    while True:
        ok, buf = cv2.imencode(".png", image & 0xF8, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise SystemExit(f"cannot encode {path}")
        if len(buf) <= MAX_BYTES or image.shape[1] < 320:
            path.write_bytes(buf.tobytes())
            return len(buf)
        image = cv2.resize(image, None, fx=0.85, fy=0.85, interpolation=cv2.INTER_AREA)


def annotated(out: Path) -> None:
    detector = Detector.load(str(MODEL), str(LABELS), threads=2)
    image = cv2.imread(str(SHARED / "images" / "kite_and_cold.jpg"))
    result = detector.detect(Frame(0, time.time(), time.monotonic(), image, "kite_and_cold.jpg"))
    drawn = draw(image, result.detections, f"inference {result.inference_ms:.1f} ms")
    size = save_png(out / "annotated.png", drawn)
    print(f"{out / 'annotated.png'}: {len(result.detections)} detections, {size // 1024} KB")


def preview(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        still = person_frame(cv2.imread(str(SHARED / "images" / "grace_hopper.bmp")))
        clip = write_video(Path(tmp) / "hopper.mp4", [still] * 30, fps=10)
        detector = Detector.load(str(MODEL), str(LABELS), threads=1)
        stats = PipelineStats()
        sink = WebSink("127.0.0.1:0", Annotator(stats.fps.rate), stats=lambda: stats)
        pipeline = Pipeline(VideoSource(clip, loop=True, realtime=True), [detector], [sink], drop=True,
                            stats=stats).start()
        driver = chromium(Path(tmp) / "profile", 1000, 640)
        try:
            driver.get(sink.url)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if (driver.find_element("id", "state").text == "live"
                        and driver.execute_script("return document.getElementById('stream').naturalWidth") > 0
                        and "person" in driver.find_element("id", "detections").text):
                    break
                time.sleep(0.2)
            else:
                raise SystemExit("the preview page never went live")
            time.sleep(2.5)  # a few seconds of fps for the stats
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
            pipeline.stop()
            pipeline.wait(10)
            pipeline.close_sinks()
        size = save_png(out / "preview.png", cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR))
        print(f"{out / 'preview.png'}: {size // 1024} KB")


def main(argv=None) -> int:
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
