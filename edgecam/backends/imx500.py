"""The Raspberry Pi AI Camera (Sony IMX500): the network runs on the sensor, and each frame's
metadata carries its outputs. No inference runs on the CPU; this module only decodes.

Built on picamera2's `IMX500` class (picamera2/devices/imx500/imx500.py): the device is
created before `Picamera2` (it hands the network firmware to the driver), its
`NetworkIntrinsics` say how the outputs are laid out (`bbox_order`, `bbox_normalization`,
`postprocess`, labels, `inference_rate`), `get_outputs()` reads the tensors from the
metadata, `convert_inference_coords()` maps a box to the main stream's pixels and
`get_kpi_info()` gives the sensor's DNN and DSP times.

The upload progress comes from debugfs, which Raspberry Pi OS keeps to root and the sudo
group: the service's own user cannot read it. picamera2 up to 0.3.34 then fails in
`IMX500()`; from 0.3.35 it uploads without progress (`fw_progress` is
`FwProgressType.NONE`), and edgecam waits for the first frame with outputs instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..datatypes import BBox, DetectOptions, Detection, Frame, SensorDetections
from ..errors import EdgecamError
from ..filtering import allowed_ids, keep
from ..labels import label_for, load_labels
from . import LoadRequest

log = logging.getLogger(__name__)

PACKAGE = "imx500-all"
MODELS_DIR = "/usr/share/imx500-models"
DEFAULT_NETWORK = f"{MODELS_DIR}/imx500_network_ssd_mobilenetv2_fpnlite_320x320_pp.rpk"
# Firmware upload stages as picamera2 numbers them (FW_LOADER_STAGE, FW_MAIN_STAGE,
# FW_NETWORK_STAGE) in the driver's fw_progress file.
UPLOAD_STAGES = ((0, "loader"), (1, "main"), (2, "network"))
NETWORK_STAGE = 2
# picamera2's own progress bar calls the upload done at 95 % (the last chunk is not counted).
UPLOAD_DONE = 0.95
POLL_S = 0.5
# Progress reading (0, 0) this long after the camera started means nothing is being uploaded:
# the network is already on the sensor.
IDLE_GRACE_S = 3.0
# No progress for this long: stop waiting and let frames tell (a stuck upload shows as frames
# without outputs, which the watchdog then catches).
STALL_S = 60.0
# Where picamera2 reads the upload progress (root:sudo 0750 on Raspberry Pi OS), and the first
# picamera2 release whose IMX500() goes on without it (raspberrypi/picamera2 #1377, #1378, #1379).
DEBUGFS = "/sys/kernel/debug"
PROGRESS_FIX = "0.3.35"
# With no progress to read, how long to wait for the network's first outputs: a first upload
# takes minutes ("several minutes", says picamera2), and only then do frames carry outputs.
BLIND_UPLOAD_S = 300.0


def user_name() -> str:
    """This process's user, for messages."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def debugfs_refused(exc: OSError) -> bool:
    """Whether `IMX500()` failed on reading its upload progress: opening the debugfs files
    (picamera2 < 0.3.35), or running `sudo -n` for them where sudo is not installed (later)."""
    name = str(exc.filename or "")
    return isinstance(exc, (PermissionError, FileNotFoundError)) and (
        "/imx500-fw:" in name or "/rp2040-spi:" in name or name == "sudo"
    )


def debugfs_message(exc: OSError) -> str:
    """One line for a picamera2 that stops on the unreadable upload progress: what and the fix."""
    if exc.filename == "sudo":
        return (
            f"picamera2 stops the AI Camera because user {user_name()} cannot read the "
            f"firmware upload progress in {DEBUGFS} and its fallback, `sudo -n`, is not "
            "installed: install it (`apt install sudo`, as root; picamera2 then goes on "
            "without the progress), or run as root or a user in the sudo group"
        )
    why = (
        "is not mounted" if isinstance(exc, FileNotFoundError) else "is open only to root and the sudo group"
    )
    return (
        f"picamera2 stops the AI Camera because user {user_name()} cannot read the firmware "
        f"upload progress ({exc.filename}: {DEBUGFS} {why}): upgrade picamera2 to "
        f"{PROGRESS_FIX} or later (`sudo apt update && sudo apt install --only-upgrade "
        "python3-picamera2`), which uploads without it; or, for a quick try, run "
        "`edgecam run --detector imx500` as a user in the sudo group"
    )


def progress_readable(device) -> bool:
    """Whether picamera2 can read the firmware upload progress for this user.

    From 0.3.35 the device says so in `fw_progress` (its `get_fw_upload_progress` fails an
    assertion when it is FwProgressType.NONE); an older one could not be built without it.
    """
    kinds = getattr(type(device), "FwProgressType", None)
    return kinds is None or getattr(device, "fw_progress", None) != kinds.NONE


def import_imx500():
    """(IMX500, NetworkIntrinsics) from picamera2, or an EdgecamError naming the package."""
    try:
        from picamera2.devices import IMX500
        from picamera2.devices.imx500 import NetworkIntrinsics
    except ImportError as exc:
        raise EdgecamError(
            f"the imx500 detector needs picamera2's IMX500 support ({exc}): "
            f"`sudo apt install {PACKAGE}`, then reboot"
        ) from None
    return IMX500, NetworkIntrinsics


def dense_or_indexed(labels: Sequence[str], ignore_dash: bool) -> Dict[int, str]:
    """Class id -> name from an intrinsics label list. With `ignore_undefined` the `-` entries
    are removed before indexing (as picamera2's demo does); otherwise they are gaps."""
    if ignore_dash:
        return dict(enumerate(lb for lb in labels if lb and lb != "-"))
    return {i: lb for i, lb in enumerate(labels) if lb and lb != "-"}


def decode_boxes(
    boxes: np.ndarray, order: Optional[str], normalized: Optional[bool], input_size: Tuple[int, int]
) -> np.ndarray:
    """Boxes [N,4] as the network wrote them -> (y0, x0, y1, x1) fractions of the input.

    `bbox_normalization` means the network wrote input pixels; `bbox_order` "xy" means
    (x0, y0, x1, y1). picamera2's demo divides all four by the input height; dividing x by
    the width is the same for the square networks it ships and right for the others.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if order == "xy":
        boxes = boxes[:, [1, 0, 3, 2]]
    if normalized:
        w, h = input_size
        boxes = boxes / np.array([h, w, h, w], dtype=np.float64)
    return boxes


class Imx500Backend:
    """The AI Camera as a detector backend, and the sensor half of its picamera2 capture.

    As the sensor (see sources.PicameraCapture) it names the camera, sets the frame rate to
    the network's inference rate, waits for the firmware upload, and decodes each frame's
    metadata into SensorDetections in the main stream. As the backend it only filters what
    the frame carries: threshold, classes, area, count.
    """

    name = "imx500"
    threads = None

    def __init__(
        self,
        device,
        intrinsics,
        labels: Dict[int, str],
        options: DetectOptions,
        network_file: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        score_floor: Optional[float] = None,
    ):
        self.device = device
        self.intrinsics = intrinsics
        self.labels = labels
        self.options = options
        self.network_file = self.model_path = network_file
        self.input_size = tuple(device.get_input_size())
        self.camera_num = device.camera_num
        self._allowed = allowed_ids(labels, options.classes)
        # The lowest threshold postprocess can be asked for: no candidate below it is decoded.
        self.score_floor = options.threshold if score_floor is None else score_floor
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._loading: Optional[str] = None
        # Set while waiting, without upload progress, for the first frame with outputs.
        self._blind_since: Optional[float] = None

    @classmethod
    def load(
        cls,
        network_file: Optional[str],
        labels_path: Optional[str],
        options: DetectOptions = DetectOptions(),
        fallback_labels: Optional[str] = None,
        score_floor: Optional[float] = None,
    ) -> "Imx500Backend":
        """Hand the network to the sensor (before Picamera2 exists) and read its intrinsics.

        `score_floor` is the lowest threshold the run may filter with (default: the options'
        one); candidates below it are dropped on the capture thread, before being decoded.

        Every failure is an EdgecamError naming the file or package; there is no CPU fallback.
        """
        network_file = network_file or DEFAULT_NETWORK
        if not network_file.endswith(".rpk"):
            raise EdgecamError(
                f"{network_file} is not an IMX500 network (.rpk): give one from "
                f"{MODELS_DIR} with --model, or use --detector cpu for .tflite"
            )
        if not os.path.isfile(network_file):
            raise EdgecamError(
                f"IMX500 network file {network_file} not found: `sudo apt install "
                f"{PACKAGE}` (it installs {MODELS_DIR}), or give --model FILE.rpk"
            )
        imx500_class, intrinsics_class = import_imx500()
        try:
            # IMX500() prints its notes (upload may take minutes, no progress bar) with print():
            # stdout is edgecam's --json output, so they go to stderr with the log.
            with contextlib.redirect_stdout(sys.stderr):
                device = imx500_class(os.path.abspath(network_file))
        except (RuntimeError, OSError, StopIteration) as exc:
            if isinstance(exc, OSError) and debugfs_refused(exc):
                raise EdgecamError(debugfs_message(exc)) from None
            raise EdgecamError(
                f"cannot open the IMX500 AI Camera ({exc or type(exc).__name__}): "
                "check the ribbon cable and `rpicam-hello --list-cameras`, and "
                f"that {PACKAGE} is installed"
            ) from None
        intrinsics = device.network_intrinsics
        if not intrinsics:
            intrinsics = intrinsics_class()
            intrinsics.task = "object detection"
        elif intrinsics.task != "object detection":
            raise EdgecamError(
                f"{network_file} is a {intrinsics.task} network, not object "
                "detection: give an SSD detection .rpk"
            )
        if intrinsics.postprocess:
            raise EdgecamError(
                f"{network_file} needs CPU post-processing "
                f"({intrinsics.postprocess!r}); edgecam reads networks whose "
                "outputs are post-processed on the sensor (*_pp.rpk)"
            )
        intrinsics.update_with_defaults()
        labels = cls._labels(intrinsics, labels_path, fallback_labels)
        backend = cls(device, intrinsics, labels, options, network_file, score_floor=score_floor)
        log.info(
            "imx500: network %s, input %dx%d, bbox order %s%s, inference rate %g fps",
            os.path.basename(network_file),
            *backend.input_size,
            intrinsics.bbox_order or "yx",
            ", in input pixels" if intrinsics.bbox_normalization else "",
            intrinsics.inference_rate,
        )
        return backend

    @staticmethod
    def _labels(intrinsics, labels_path: Optional[str], fallback: Optional[str]) -> Dict[int, str]:
        # A label file given by the user wins over the network's own list, as in picamera2.
        if labels_path:
            return load_labels(labels_path)
        if intrinsics.labels:
            return dense_or_indexed(intrinsics.labels, bool(intrinsics.ignore_dash_labels))
        if fallback:
            return load_labels(fallback)
        log.warning(
            "imx500: the network carries no labels and none were given: "
            "classes show as class_<id> (set [model] labels)"
        )
        return {}

    # -- the sensor half (called by the capture thread) ------------------------------------
    @property
    def sensor(self) -> "Imx500Backend":
        """The backend is its own sensor half: the Pi camera source must be given it."""
        return self

    def controls(self) -> dict:
        """Camera controls the network needs: frames at its inference rate."""
        return {"FrameRate": float(self.intrinsics.inference_rate)}

    @property
    def loading(self) -> Optional[str]:
        """What the sensor is busy with while its firmware uploads, else None (thread-safe)."""
        with self._lock:
            return self._loading

    def _set_loading(self, text: Optional[str]) -> None:
        with self._lock:
            self._loading = text

    def upload_progress(self) -> Tuple[Optional[str], int, int]:
        """(stage name, bytes done, bytes total) of the upload under way, or (None, 0, 0)."""
        for stage, name in UPLOAD_STAGES:
            current, total = self.device.get_fw_upload_progress(stage)
            if total:
                return name, int(current), int(total)
        return None, 0, 0

    def started(self, _cam) -> None:
        """Wait while the camera uploads firmware to the sensor, logging the progress.

        The first start after boot uploads loader, main and network firmware (many seconds);
        `loading` says so meanwhile, so the service manager is told the start is still going.
        When this user cannot read the progress, `loading` stays set until `read` sees the
        first frame with outputs (at most BLIND_UPLOAD_S).
        """
        if not progress_readable(self.device):
            log.warning(
                "imx500: the firmware upload progress is not readable for user %s "
                "(%s is root:sudo 0750): waiting up to %.0f s for the first frame "
                "with the network's outputs",
                user_name(),
                DEBUGFS,
                BLIND_UPLOAD_S,
            )
            self._blind_since = self._clock()
            self._set_loading("uploading firmware to the IMX500 (progress not readable)")
            return
        start = last_change = self._clock()
        last: Tuple[Optional[str], int] = (None, -1)
        logged: Tuple[Optional[str], int] = (None, -1)
        try:
            while True:
                stage, current, total = self.upload_progress()
                now = self._clock()
                if stage is None:
                    if now - start >= IDLE_GRACE_S:
                        return
                else:
                    percent = int(100 * current / total)
                    self._set_loading(f"uploading {stage} firmware to the IMX500: {percent}%")
                    if (stage, current) != last:
                        last, last_change = (stage, current), now
                    if (stage, percent // 10) != logged:
                        logged = (stage, percent // 10)
                        log.info(
                            "imx500: uploading %s firmware: %d%% of %d kB", stage, percent, total // 1024
                        )
                    if stage == "network" and current >= UPLOAD_DONE * total:
                        log.info("imx500: network firmware uploaded in %.1f s", now - start)
                        return
                    if now - last_change >= STALL_S:
                        log.warning(
                            "imx500: firmware upload stalled at %d%% for %.0f s: going on", percent, STALL_S
                        )
                        return
                self._sleep(POLL_S)
        finally:
            self._set_loading(None)

    def read(self, metadata: dict, cam) -> Optional[SensorDetections]:
        """The frame's SensorDetections, or None when its metadata has no outputs yet."""
        outputs = self.device.get_outputs(metadata, add_batch=True)
        if self._blind_since is not None:
            self._blind_wait(self._blind_since, outputs is not None)
        if outputs is None:
            return None
        boxes = decode_boxes(
            outputs[0][0], self.intrinsics.bbox_order, self.intrinsics.bbox_normalization, self.input_size
        )
        scores, classes = np.ravel(outputs[1][0]), np.ravel(outputs[2][0])
        n = len(scores)
        if len(outputs) > 3:  # the detection count, when the network reports one
            n = max(0, min(n, int(np.ravel(outputs[3])[0])))
        main_w, main_h = cam.camera_configuration()["main"]["size"]
        found = []
        for i in range(n):
            if float(scores[i]) < self.score_floor:  # no threshold of this run would keep it
                continue
            x, y, w, h = self.device.convert_inference_coords(tuple(boxes[i]), metadata, cam)
            box = BBox(x / main_w, y / main_h, (x + w) / main_w, (y + h) / main_h).clip()
            class_id = int(classes[i])
            found.append(Detection(label_for(self.labels, class_id), class_id, float(scores[i]), box))
        kpi = self.device.get_kpi_info(metadata)
        dnn, dsp = kpi if kpi else (None, None)
        return SensorDetections(tuple(found), dnn, dsp)

    def _blind_wait(self, since: float, has_outputs: bool) -> None:
        """End the wait without upload progress (begun at `since`) on the first outputs, or
        after BLIND_UPLOAD_S (frames without outputs then starve the watchdog, as after a
        stalled upload)."""
        waited = self._clock() - since
        if has_outputs:
            log.info("imx500: the network runs, %.1f s after the camera started", waited)
        elif waited < BLIND_UPLOAD_S:
            return
        else:
            log.warning("imx500: no outputs %.0f s after the camera started: going on", waited)
        self._blind_since = None
        self._set_loading(None)

    # -- the backend half (called by the pipeline) ------------------------------------------
    def prepare(self, frame: Frame) -> Optional[Tuple[SensorDetections, None]]:
        """(what the sensor reported with this frame, no transform); None: no information."""
        return None if frame.detected is None else (frame.detected, None)

    def invoke(self, prepared: SensorDetections) -> SensorDetections:
        """Nothing to run: the sensor already did."""
        return prepared

    def postprocess(
        self, raw: SensorDetections, _prepared=None, threshold: Optional[float] = None
    ) -> Tuple[Detection, ...]:
        """The sensor's candidates above the threshold, allowed and large enough, best first."""
        return keep(raw.candidates, self.options, self._allowed, threshold)

    def timings(self, raw: SensorDetections) -> Dict[str, float]:
        """The sensor's own times (ms) for this frame, when it reported them."""
        out = {}
        if raw.dnn_ms is not None:
            out["sensor_dnn"] = raw.dnn_ms
        if raw.dsp_ms is not None:
            out["sensor_dsp"] = raw.dsp_ms
        return out

    def close(self) -> None:
        """Nothing to release: the network stays on the sensor, and the camera is the source's."""

    def describe(self) -> str:
        """For the start-up log line."""
        return f"IMX500 sensor ({os.path.basename(self.network_file)})"


def load_backends(request: LoadRequest) -> List[Imx500Backend]:
    """The `imx500` backend's loader (edgecam.backends.REGISTRY): the network handed to the
    sensor, before Picamera2 exists."""
    return [
        Imx500Backend.load(
            request.model, request.labels, request.options, request.fallback_labels, request.score_floor
        )
    ]


def list_networks(models_dir: str = MODELS_DIR) -> List[str]:
    """The .rpk network files installed by imx500-all (or another folder)."""
    try:
        return sorted(f for f in os.listdir(models_dir) if f.endswith(".rpk"))
    except OSError:
        return []
