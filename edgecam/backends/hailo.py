"""The Raspberry Pi AI Kit / AI HAT+ (Hailo-8L, Hailo-8, Hailo-10H) as a detector backend.

Built on picamera2's `Hailo` class (picamera2/devices/hailo/hailo.py): `get_input_shape()`
gives (height, width, channels), which also sizes the Pi camera's low-resolution stream;
`run(image)` returns the HEF's NMS output, one array per class of rows
[y0, x0, y1, x1, score] normalised to the input. Frames from USB cameras, streams and files
are resized on the CPU, as for the CPU backend.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..datatypes import DetectOptions, Detection, Frame
from ..detector import Transform, image_to_input
from ..errors import EdgecamError
from ..filtering import allowed_ids, keep
from ..labels import label_for, load_labels
from . import LoadRequest

log = logging.getLogger(__name__)

MODELS_DIR = "/usr/share/hailo-models"
# The detection HEF Raspberry Pi ships for each architecture (hailo_architecture()).
DEFAULT_HEF = {"HAILO8L": "yolov8s_h8l.hef", "HAILO8": "yolov8s_h8l.hef", "HAILO10H": "yolov8m_h10.hef"}
PACKAGES = "hailo-all (Hailo-8/8L) or hailo-h10-all (Hailo-10H)"
# The packaged YOLO HEFs detect the 80 COCO classes, indexed without the gaps of the 90-id map.
COCO_CLASSES = 80


def package_for(architecture: Optional[str]) -> str:
    """The apt package that brings HailoRT, the driver and the models for an architecture."""
    return {"HAILO10H": "hailo-h10-all"}.get(architecture or "", "hailo-all") if architecture else PACKAGES


def import_hailo():
    """(Hailo, hailo_architecture) from picamera2, or an EdgecamError naming the packages.

    picamera2 exports `Hailo` only when HailoRT's Python package (hailo_platform) imports.
    """
    try:
        from picamera2.devices import Hailo
    except ImportError as exc:
        raise EdgecamError(
            f"the hailo detector needs HailoRT and picamera2's Hailo support "
            f"({exc}): `sudo apt install {PACKAGES}`, then reboot"
        ) from None
    try:
        from picamera2.devices import hailo_architecture
    except ImportError:  # older picamera2: only one architecture family had models
        hailo_architecture = None
    return Hailo, hailo_architecture


def default_hef(architecture: Optional[str], models_dir: str = MODELS_DIR) -> str:
    """The packaged detection HEF for an architecture (Hailo-8/8L when unknown)."""
    return os.path.join(models_dir, DEFAULT_HEF.get(architecture or "", DEFAULT_HEF["HAILO8L"]))


def dense_labels(labels: Dict[int, str], num_classes: int) -> Dict[int, str]:
    """Labels indexed like the HEF's classes: a map of `num_classes` names with gaps in its
    ids (COCO's 90-id map, as the CPU model's) is closed up to ids 0..num_classes-1."""
    if len(labels) == num_classes and max(labels) >= num_classes:
        return dict(enumerate(labels[k] for k in sorted(labels)))
    return labels


def per_class_to_arrays(output: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes [N,4] y0,x0,y1,x1, class ids [N], scores [N]) from the per-class NMS output."""
    boxes, classes, scores = [], [], []
    for class_id, rows in enumerate(output):
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
        boxes.append(rows[:, :4])
        scores.append(rows[:, 4])
        classes.append(np.full(len(rows), class_id))
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0, int), np.zeros(0)
    return np.concatenate(boxes), np.concatenate(classes), np.concatenate(scores)


class HailoBackend:
    """A HEF on the Hailo accelerator: the CPU only fits the frame to the input and decodes."""

    name = "hailo"
    threads = None
    sensor = None  # the accelerator sits beside the camera, not on its sensor

    def __init__(
        self,
        device,
        labels: Dict[int, str],
        options: DetectOptions,
        hef_path: str,
        architecture: Optional[str],
    ):
        self.device = device
        self.hef_path = self.model_path = hef_path
        self.architecture = architecture
        h, w = device.get_input_shape()[:2]
        self.input_size = (int(w), int(h))
        self.labels = labels
        self.options = options
        self._allowed = allowed_ids(labels, options.classes)

    @classmethod
    def load(
        cls,
        hef_path: Optional[str],
        labels_path: Optional[str],
        options: DetectOptions = DetectOptions(),
        fallback_labels: Optional[str] = None,
    ) -> "HailoBackend":
        """Open the accelerator with a HEF (the packaged one for its architecture by default).

        Labels: `labels_path`, else `fallback_labels` (the installed COCO map of the CPU model).
        """
        hailo_class, hailo_architecture = import_hailo()
        architecture = hailo_architecture() if hailo_architecture else None
        if hailo_architecture and architecture is None:
            raise EdgecamError(
                "no Hailo accelerator found (no /dev/hailo0): seat the AI Kit / "
                f"AI HAT+ and check `hailortcli fw-control identify`; the "
                f"driver comes with `sudo apt install {PACKAGES}`"
            )
        hef_path = hef_path or default_hef(architecture)
        if not hef_path.endswith(".hef"):
            raise EdgecamError(
                f"{hef_path} is not a Hailo model (.hef): give one from "
                f"{MODELS_DIR} with --model, or use --detector cpu for .tflite"
            )
        if not os.path.isfile(hef_path):
            raise EdgecamError(
                f"Hailo model {hef_path} not found: `sudo apt install "
                f"{package_for(architecture)}` (it installs {MODELS_DIR}), "
                "or give --model FILE.hef"
            )
        labels_path = labels_path or fallback_labels
        if not labels_path:
            raise EdgecamError(
                "the hailo detector needs the HEF's label file: give --labels "
                "FILE (one class per line, e.g. the 80 COCO names)"
            )
        labels = dense_labels(load_labels(labels_path), COCO_CLASSES)
        try:
            device = hailo_class(hef_path)
        except Exception as exc:  # HailoRT raises its own types; each is a failed open
            raise EdgecamError(
                f"cannot open the Hailo accelerator with {hef_path} "
                f"({type(exc).__name__}: {exc}): compare `hailortcli --version` "
                "with the driver's (`modinfo hailo_pci`) and reinstall "
                f"{package_for(architecture)} if they differ"
            ) from None
        backend = cls(device, labels, options, hef_path, architecture)
        log.info(
            "hailo: %s on %s, input %dx%d",
            os.path.basename(hef_path),
            architecture or "Hailo",
            *backend.input_size,
        )
        return backend

    def prepare(self, frame: Frame) -> Tuple[np.ndarray, Transform]:
        """(RGB input at the HEF's size, transform back to the frame). The Pi camera's
        low-resolution stream is used as is; other frames are resized on the CPU."""
        return image_to_input(
            frame.image, self.input_size, resize=self.options.resize, model_input=frame.model_input
        )

    def invoke(self, image: np.ndarray):
        """The HEF's output for one input image (the accelerator does the work)."""
        return self.device.run(image)

    def postprocess(
        self, raw, transform: Transform, threshold: Optional[float] = None
    ) -> Tuple[Detection, ...]:
        """Detections above the threshold, allowed and large enough, best first."""
        boxes, classes, scores = per_class_to_arrays(raw)
        floor = self.options.threshold if threshold is None else threshold
        candidates = (
            Detection(label_for(self.labels, int(c)), int(c), float(s), transform.to_frame(*map(float, b)))
            for b, c, s in zip(boxes, classes, scores)
            if s >= floor
        )
        return keep(candidates, self.options, self._allowed, threshold)

    def timings(self, _raw) -> Dict[str, float]:
        """No times are reported from the device."""
        return {}

    def describe(self) -> str:
        """For the start-up log line."""
        return f"{self.architecture or 'Hailo'} ({os.path.basename(self.hef_path)})"

    def close(self) -> None:
        """Release the accelerator."""
        self.device.close()


def load_backends(request: LoadRequest) -> List[HailoBackend]:
    """The `hailo` backend's loader (edgecam.backends.REGISTRY): one device, one backend."""
    return [HailoBackend.load(request.model, request.labels, request.options, request.fallback_labels)]
