"""Stand-in for picamera2/devices/hailo/hailo.py: run() returns what a YOLO HEF with HailoRT's
NMS returns, one array per class (80 COCO classes) of rows [y0, x0, y1, x1, score]
normalised to the input; the numbers come from the real CPU SSD model on the same image.

As in picamera2, the instances share one VDevice (`Hailo.TARGET`), released when the last one
closes; close() drops the configured model, so a run() or a second close() after it raises
AttributeError."""

from __future__ import annotations

import os

import numpy as np

from standin_hardware import coco80_index, hardware, ssd

NUM_CLASSES = 80


def hailo_architecture():
    """'HAILO8L', 'HAILO8', 'HAILO10H', or None when no device answers."""
    return hardware().get("hailo", {}).get("architecture")


class HailoRTException(Exception):
    """hailo_platform's error type."""


class Hailo:
    TARGET = None
    TARGET_REF_COUNT = 0

    def __init__(self, hef_path, batch_size=None, output_type="FLOAT32"):
        hw = hardware().get("hailo", {})
        if not hw.get("architecture"):
            raise HailoRTException("Failed to create vdevice. there are not enough free devices")
        if not os.path.isfile(hef_path):
            raise HailoRTException(f"Failed to parse HEF file {hef_path}")
        self.batch_size = batch_size
        self.input_shape = tuple(hw.get("input_shape", (640, 640, 3)))
        self.runs = []
        if Hailo.TARGET is None:
            Hailo.TARGET = object()  # the VDevice
        Hailo.TARGET_REF_COUNT += 1
        self.target = Hailo.TARGET
        self.configured_infer_model = hef_path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get_input_shape(self):
        return self.input_shape

    def run(self, input_data):
        if self.batch_size is None:
            input_data = np.expand_dims(input_data, axis=0)
        results = []
        for frame in input_data:
            self.configured_infer_model  # gone after close(): AttributeError, as in picamera2
            if frame.shape != self.input_shape:
                raise HailoRTException(f"input buffer shape {frame.shape} != {self.input_shape}")
            self.runs.append(frame)
            boxes, classes, scores, _n, _ms = ssd().run(frame)
            per_class = [np.zeros((0, 5), np.float32) for _ in range(NUM_CLASSES)]
            index = coco80_index()
            for b, c, s in zip(boxes, classes, scores):
                k = index[int(c)]
                per_class[k] = np.vstack([per_class[k], np.append(b, s).astype(np.float32)])
            results.append(per_class)
        return results[0] if self.batch_size is None else results

    def close(self):
        del self.configured_infer_model
        Hailo.TARGET_REF_COUNT -= 1
        if Hailo.TARGET_REF_COUNT == 0:
            Hailo.TARGET = None
