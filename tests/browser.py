"""Headless Chromium (Debian's chromium + chromium-driver) through selenium, and a test clip
with a person, for the preview page tests and scripts/make_docs_images.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

from media import write_video

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# The machine may have no network: without these Chromium hangs on background connections.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--hide-scrollbars")

PERSON_BGR = (55, 55, 255)  # edgecam.annotate.colour_for(0): the person box


def chromium(profile: Path, width: int = 1280, height: int = 900):
    """A selenium Chrome driver on Debian's headless Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
                           "(scripts/test does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def person_frame(image: np.ndarray, size: Tuple[int, int] = (640, 480)) -> np.ndarray:
    """`image` fitted into a grey `size` canvas (aspect kept), like a camera frame."""
    w, h = size
    s = min(w / image.shape[1], h / image.shape[0])
    fitted = cv2.resize(image, (int(image.shape[1] * s), int(image.shape[0] * s)))
    canvas = np.full((h, w, 3), 96, np.uint8)
    y0, x0 = (h - fitted.shape[0]) // 2, (w - fitted.shape[1]) // 2
    canvas[y0:y0 + fitted.shape[0], x0:x0 + fitted.shape[1]] = fitted
    return canvas


def counter_clip(path: Path, image: np.ndarray, frames: int = 30, fps: float = 15) -> np.ndarray:
    """A still scene with a frame counter in its bottom-right corner (so every frame differs);
    returns the scene without the counter."""
    still = person_frame(image)
    clip = []
    for i in range(frames):
        f = still.copy()
        cv2.putText(f, f"{i:02d}", (590, 465), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        clip.append(f)
    write_video(path, clip, fps)
    return still


def box_edge_fraction(image: np.ndarray, box, colour=PERSON_BGR, tol: int = 70) -> float:
    """Fraction of rows along the left edge of normalised `box` in `image` that have a pixel
    of `colour` within a few pixels of the edge: ~1 when the box is drawn, ~0 when not."""
    h, w = image.shape[:2]
    x = int(round(box[0] * w))
    y1, y2 = int(box[1] * h) + 12, int(box[3] * h) - 12
    band = image[y1:y2, max(0, x - 5):x + 6].astype(int)
    near = (np.abs(band - np.array(colour)).max(axis=2) < tol).any(axis=1)
    return float(near.mean()) if len(near) else 0.0
