"""What the stood-in hardware is: a JSON file named by EDGECAM_STANDIN_HARDWARE, so the same
description reaches the tests' own process and the `edgecam` processes they start.

The numbers the stand-ins report are real: `RealSsd` runs the shared CPU SSD model
(ai-edge-litert directly, not edgecam's code) on the scene photo.
"""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

ENV = "EDGECAM_STANDIN_HARDWARE"
STANDINS = Path(__file__).resolve().parent
SHARED_MODELS = STANDINS.parent.parent.parent / "shared" / "models"
SSD_MODEL = SHARED_MODELS / "ssd_mobilenet_v1_coco_quant.tflite"
COCO_LABELS_90 = SHARED_MODELS / "coco_labels_90.txt"


def hardware() -> dict:
    """The current description ({} when none: no accelerator, as on this machine)."""
    path = os.environ.get(ENV)
    if not path:
        return {}
    return json.loads(Path(path).read_text())


class RealSsd:
    """The shared COCO SSD MobileNet v1, run with the reference interpreter."""

    def __init__(self, model_path: Path = SSD_MODEL):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=2)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self.index, (_, self.h, self.w, _) = inp["index"], inp["shape"]
        self.outputs = self.interpreter.get_output_details()

    def run(self, rgb: np.ndarray):
        """(boxes [N,4] y0,x0,y1,x1 normalised, classes [N] 90-id, scores [N], count, ms)."""
        fitted = cv2.resize(rgb, (int(self.w), int(self.h)), interpolation=cv2.INTER_LINEAR)
        self.interpreter.set_tensor(self.index, fitted[np.newaxis])
        t0 = time.perf_counter()
        self.interpreter.invoke()
        ms = (time.perf_counter() - t0) * 1e3
        boxes, classes, scores, count = (self.interpreter.get_tensor(d["index"]).copy()
                                         for d in self.outputs)
        n = int(count.reshape(-1)[0])
        return boxes[0][:n], classes[0][:n].astype(int), scores[0][:n], n, ms


@lru_cache(maxsize=None)
def ssd() -> RealSsd:
    """One interpreter per process."""
    return RealSsd()


@lru_cache(maxsize=None)
def scene(path: str) -> np.ndarray:
    """The scene photo (BGR) the camera looks at."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return image


@lru_cache(maxsize=None)
def coco80_index() -> dict:
    """COCO 90-id class -> index among the 80 named classes (the YOLO HEFs' class order)."""
    names = COCO_LABELS_90.read_text().splitlines()
    named = [i for i, n in enumerate(names) if n.strip() and n.strip() != "n/a"]
    return {cid: k for k, cid in enumerate(named)}
