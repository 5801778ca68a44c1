"""Stand-in for picamera2/devices/imx500/imx500.py: the same public behaviour, with the
sensor's work done by the real CPU SSD model on the scene photo.

Kept as the real class has it: the device is looked for first ("Requested camera dev-node
not found"), then the network file ("Firmware file ... does not exist."); intrinsics come
from the network (None when it has none); get_outputs() reshapes each tensor of the flat
CnnOutputTensor in Fortran order with the shapes packed in CnnOutputTensorInfo;
convert_inference_coords() uses libcamera's integer Rectangle maths against the 4056x3040
full sensor; get_fw_upload_progress(stage) answers (0, 0) for any other stage than the one
under way; get_kpi_info() divides the reported microseconds by 1000. Like the real class, IMX500()
prints its notes to stdout.

The firmware-upload progress lives in debugfs (/sys/kernel/debug, root:sudo 0750 on Raspberry
Pi OS), stood in for by the folder the description names as `imx500.debugfs` (absent: readable,
as for root). What IMX500() does when it cannot read it depends on the picamera2 release,
`picamera2` in the description (default the newest, 0.3.38):
- up to 0.3.34 the constructor opens imx500-fw:<id>/fw_progress and
  rp2040-spi:<id>/transfer_progress right after finding the device, so it raises
  PermissionError (or FileNotFoundError when debugfs is not mounted);
- from 0.3.35 (PRs #1378/#1379) it tries them, then the sudo helper scripts (`sudo -n`, which
  fails for a user without a sudoers rule and always under NoNewPrivileges), prints "IMX500
  firmware update progress bar is not available", sets `fw_progress` to
  FwProgressType.NONE and uploads anyway; get_fw_upload_progress() then fails its
  `assert self.fw_progress != IMX500.FwProgressType.NONE`. Without sudo installed
  (`imx500.sudo` false) the `sudo -n` attempt raises FileNotFoundError from IMX500().
"""

from __future__ import annotations

import ctypes
import os
import time
from functools import lru_cache
from typing import Optional

import cv2
import numpy as np

from enum import IntEnum

from standin_hardware import hardware, scene, ssd

NETWORK_NAME_LEN = 64
MAX_NUM_TENSORS = 16
MAX_NUM_DIMENSIONS = 16
FW_LOADER_STAGE, FW_MAIN_STAGE, FW_NETWORK_STAGE = 0, 1, 2
FULL_SENSOR = (4056, 3040)
# Firmware sizes in bytes (loader, main, network), as the driver reports them.
FIRMWARE_SIZES = (61_440, 1_572_864, 3_145_728)
# The device ids picamera2 reads from sysfs (the AI Camera on a Pi 5's CAM1 port).
IMX500_DEVICE_ID = "10-001a"
SPI_DEVICE_ID = IMX500_DEVICE_ID.replace("001a", "0040")
# The first picamera2 release whose IMX500() survives an unreadable debugfs.
PROGRESS_FIX = (0, 3, 35)


def release() -> tuple:
    """The picamera2 release the description plays."""
    return tuple(int(p) for p in str(hardware().get("picamera2", "0.3.38")).split("."))


def progress_files(hw: dict) -> tuple:
    """(fw_progress, transfer_progress) in the stood-in debugfs; () when none is described."""
    debugfs = hw.get("debugfs")
    if not debugfs:
        return ()
    return (f"{debugfs}/imx500-fw:{IMX500_DEVICE_ID}/fw_progress",
            f"{debugfs}/rp2040-spi:{SPI_DEVICE_ID}/transfer_progress")


def _read_all(paths) -> None:
    for path in paths:
        with open(path) as f:
            f.readline()


class OutputTensorInfo(ctypes.LittleEndianStructure):
    _fields_ = [("tensor_data_num", ctypes.c_uint32), ("num_dimensions", ctypes.c_uint32),
                ("size", ctypes.c_uint16 * MAX_NUM_DIMENSIONS)]


class CnnOutputTensorInfoExported(ctypes.LittleEndianStructure):
    _fields_ = [("network_name", ctypes.c_char * NETWORK_NAME_LEN), ("num_tensors", ctypes.c_uint32),
                ("info", OutputTensorInfo * MAX_NUM_TENSORS)]


# --- libcamera geometry, integer maths as in libcamera's Rectangle ----------------------------

class Rectangle:
    def __init__(self, x, y, width, height):
        self.x, self.y, self.width, self.height = int(x), int(y), int(width), int(height)

    def scaled_by(self, num, den):
        return Rectangle(self.x * num[0] // den[0], self.y * num[1] // den[1],
                         self.width * num[0] // den[0], self.height * num[1] // den[1])

    def bounded_to(self, b):
        x0, y0 = max(self.x, b.x), max(self.y, b.y)
        x1 = min(self.x + self.width, b.x + b.width)
        y1 = min(self.y + self.height, b.y + b.height)
        return Rectangle(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))

    def translated_by(self, x, y):
        return Rectangle(self.x + x, self.y + y, self.width, self.height)

    def to_tuple(self):
        return (self.x, self.y, self.width, self.height)


# --- the firmware upload, which starts with the first camera start after power-on ---------------

class _Upload:
    def __init__(self):
        self.started_at: Optional[float] = None

    def begin(self):
        if self.started_at is None:
            self.started_at = time.monotonic()

    def seconds(self) -> float:
        return float(hardware().get("imx500", {}).get("upload_s", 0.0))

    def state(self):
        """(stage, bytes done, stage size) the driver's fw_progress file would hold."""
        if self.started_at is None:
            return FW_LOADER_STAGE, 0, 0
        total = self.seconds()
        elapsed = time.monotonic() - self.started_at
        if total <= 0 or elapsed >= total:
            return FW_NETWORK_STAGE, FIRMWARE_SIZES[2], FIRMWARE_SIZES[2]
        part = total / 3
        stage = min(2, int(elapsed // part))
        size = FIRMWARE_SIZES[stage]
        return stage, int(size * (elapsed - stage * part) / part), size

    def done(self) -> bool:
        stage, current, size = self.state()
        return stage == FW_NETWORK_STAGE and size and current >= size


_upload = _Upload()


# --- the network's outputs ------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _sensor_run(scene_path: str):
    # ROI is the full sensor, so the network sees the whole scene (stretched to its input).
    rgb = cv2.cvtColor(scene(scene_path), cv2.COLOR_BGR2RGB)
    return ssd().run(rgb)


def network_tensors(hw: dict):
    """[boxes (N,4), scores (N,), classes (N,), count (1,)] as the _pp SSD writes them,
    laid out per the network's intrinsics (bbox_order, bbox_normalization)."""
    boxes, classes, scores, n, ms = _sensor_run(hw["scene"])
    cpu = (hw["imx500"].get("intrinsics") or {}).get("cpu", {})
    w, h = hw["imx500"].get("input_size", (320, 320))
    out = boxes.astype(np.float32).copy()
    if cpu.get("bbox_normalization"):
        out = out * np.array([h, w, h, w], np.float32)
    if cpu.get("bbox_order") == "xy":
        out = out[:, [1, 0, 3, 2]]
    return [out, scores.astype(np.float32), classes.astype(np.float32),
            np.array([n], np.float32)], ms


def sensor_metadata(hw: dict, frame_no: int) -> dict:
    """The Cnn* metadata of one frame, or {} while the network is not running yet."""
    if not _upload.done() or frame_no <= hw["imx500"].get("frames_without_outputs", 0):
        return {}
    tensors, ms = network_tensors(hw)
    info = CnnOutputTensorInfoExported()
    info.network_name = b"ssd_mobilenetv2_fpnlite_320x320_pp"
    info.num_tensors = len(tensors)
    flat = []
    for i, t in enumerate(tensors):
        info.info[i].tensor_data_num = t.size
        info.info[i].num_dimensions = t.ndim
        for d, s in enumerate(t.shape):
            info.info[i].size[d] = s
        flat.extend(t.flatten(order="F").tolist())
    dsp_us = 1200
    return {"CnnOutputTensor": flat, "CnnOutputTensorInfo": bytes(info),
            "CnnKpiInfo": [int(ms * 1000), dsp_us]}


# --- the classes ---------------------------------------------------------------------------------

class NetworkIntrinsics:
    """The parts of picamera2's NetworkIntrinsics edgecam reads, with the same defaults."""

    def __init__(self, val=None):
        self._i = dict(val) if val else None

    def _get(self, key, default=None):
        return self._i.get(key, default) if self._i else default

    def _cpu(self, key):
        return self._i["cpu"].get(key) if self._i and "cpu" in self._i else None

    @property
    def task(self):
        return self._get("task")

    @task.setter
    def task(self, val):
        self._i = {**(self._i or {}), "task": val}

    @property
    def inference_rate(self):
        return self._get("inference_rate")

    @property
    def bbox_normalization(self):
        return self._cpu("bbox_normalization")

    @property
    def bbox_order(self):
        return self._cpu("bbox_order")

    @property
    def postprocess(self):
        return self._cpu("post_processing")

    @property
    def labels(self):
        return self._i["classes"].get("labels") if self._i and "classes" in self._i else None

    @property
    def ignore_dash_labels(self):
        return self._i["classes"].get("ignore_undefined") if self._i and "classes" in self._i else None

    def update_with_defaults(self):
        self._i = {"inference_rate": 30.0, **(self._i or {})}


class IMX500:
    def __init__(self, network_file: str, camera_id: str = ""):
        hw = hardware()
        if "imx500" not in hw:
            raise RuntimeError("IMX500: Requested camera dev-node not found")
        self.__hw = hw["imx500"]
        self.__camera_num = 0
        self.__progress = progress_files(self.__hw)
        fw_progress_type = getattr(IMX500, "FwProgressType", None)
        if fw_progress_type is None:
            # Up to 0.3.34: plain open() calls, nothing caught.
            self.fw_progress = [open(path) for path in self.__progress]
        else:
            try:
                self.fw_progress = fw_progress_type.DIRECT
                _read_all(self.__progress)
            except OSError:  # `cat` failing: CalledProcessError in picamera2
                # Then `sudo -n` and the helper scripts: they fail too (no sudoers rule,
                # NoNewPrivileges), unless sudo is not installed at all: picamera2 catches
                # only CalledProcessError, so subprocess's FileNotFoundError escapes.
                if not self.__hw.get("sudo", True):
                    raise FileNotFoundError(2, "No such file or directory", "sudo")
                self.fw_progress = fw_progress_type.NONE
                print("IMX500 firmware update progress bar is not available")
        self.__cfg = {"network_file": network_file, "input_tensor": {}}
        if network_file != "":
            if not os.path.isfile(network_file):
                raise RuntimeError(f"Firmware file {network_file} does not exist.")
            # picamera2 prints this (to stdout) once the driver has the network file.
            print("\n------\nNOTE: Loading network firmware onto the IMX500 can take several "
                  "minutes,\nplease do not close down the application.\n------\n")
            intrinsics = self.__hw.get("intrinsics")
            if intrinsics is not None:
                self.__cfg["intrinsics"] = NetworkIntrinsics(intrinsics)
            self.__cfg["input_tensor_size"] = tuple(self.__hw.get("input_size", (320, 320)))
        self.__cfg["roi"] = Rectangle(0, 0, *FULL_SENSOR)

    @property
    def camera_num(self):
        return self.__camera_num

    @property
    def config(self) -> dict:
        return self.__cfg

    @property
    def network_intrinsics(self):
        return self.__cfg.get("intrinsics", None)

    def get_input_size(self) -> tuple:
        return self.__cfg["input_tensor_size"]

    def get_fw_upload_progress(self, stage_req) -> tuple:
        fw_progress_type = getattr(IMX500, "FwProgressType", None)
        if fw_progress_type is not None:
            assert self.fw_progress != fw_progress_type.NONE
            _read_all(self.__progress)
        stage, block, size = _upload.state()
        return (min(block, size), size) if stage == stage_req else (0, 0)

    def get_outputs(self, metadata: dict, add_batch=False):
        output_tensor = metadata.get("CnnOutputTensor")
        if not output_tensor:
            return None
        np_output = np.fromiter(output_tensor, dtype=np.float32)
        offset, outputs = 0, []
        for shape in self.get_output_shapes(metadata):
            size = int(np.prod(shape))
            t = np_output[offset:offset + size].reshape(shape, order="F")
            outputs.append(np.expand_dims(t, 0) if add_batch else t)
            offset += size
        return outputs

    def get_output_shapes(self, metadata: dict):
        raw = metadata.get("CnnOutputTensorInfo")
        if not raw:
            return []
        parsed = CnnOutputTensorInfoExported()
        if len(raw) != ctypes.sizeof(parsed):
            raise ValueError(f"tensor info length {len(raw)} does not match expected size "
                             f"{ctypes.sizeof(parsed)}")
        ctypes.memmove(ctypes.addressof(parsed), bytes(raw), ctypes.sizeof(parsed))
        return [list(t.size)[:t.num_dimensions] for t in parsed.info[:parsed.num_tensors]]

    def convert_inference_coords(self, coords: tuple, metadata: dict, picam2, stream="main") -> tuple:
        isp_output_size = tuple(picam2.camera_configuration()[stream]["size"])
        sensor_output_size = tuple(picam2.camera_configuration()["raw"]["size"])
        scaler_crop = Rectangle(*metadata["ScalerCrop"])
        y0, x0, y1, x1 = coords
        width, height = FULL_SENSOR
        obj = Rectangle(*np.maximum(np.array([x0 * width, y0 * height, (x1 - x0) * width,
                                              (y1 - y0) * height]), 0).astype(np.int32))
        sensor_crop = scaler_crop.scaled_by(sensor_output_size, FULL_SENSOR)
        obj = obj.bounded_to(self.__cfg["roi"])
        obj_sensor = obj.scaled_by(sensor_output_size, FULL_SENSOR)
        obj_bound = obj_sensor.bounded_to(sensor_crop)
        obj_translated = obj_bound.translated_by(-sensor_crop.x, -sensor_crop.y)
        return obj_translated.scaled_by(isp_output_size, (sensor_crop.width, sensor_crop.height)).to_tuple()

    @staticmethod
    def get_kpi_info(metadata: dict):
        kpi_info = metadata.get("CnnKpiInfo")
        if kpi_info is None:
            return None
        return kpi_info[0] / 1000, kpi_info[1] / 1000


class _FwProgressType(IntEnum):
    NONE = 0  # progress not available
    DIRECT = 1  # debugfs readable
    INDIRECT = 2  # through the sudo helper scripts


if release() >= PROGRESS_FIX:
    IMX500.FwProgressType = _FwProgressType
