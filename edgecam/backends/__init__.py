"""Detector backends: where inference runs, behind one interface and one name -> loader registry.

`Backend` is the interface the pipeline, the probe and the wiring use; `REGISTRY` names every
backend with its loader, and is what `--detector`'s choices, `[model] detector`'s validation,
`auto` and the doctor read (`CHOICES`, `resolve_backend`, `info`). A backend whose hardware or
packages are missing raises an EdgecamError naming the apt package; nothing ever falls back to
the CPU silently.

Backends: ``cpu`` and ``edgetpu`` are edgecam.detector.Detector (a TFLite interpreter, with or
without the Coral delegate); ``imx500`` reads the detections the Raspberry Pi AI Camera made on
its sensor (no inference on the CPU); ``hailo`` runs a HEF on the AI Kit / AI HAT+.

This module sits on the ground floor (config.py validates against it): a loader is named by
its module and function and imported only when that backend is loaded, so listing the
backends imports none of them (nor OpenCV or an interpreter).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

from ..datatypes import DetectOptions, Detection, Frame, SensorDetections
from ..presence import coral_pcie, find_coral_usb, hailo_devices, imx500_subdevs

log = logging.getLogger(__name__)


class Sensor(Protocol):
    """A camera that detects on its own sensor (the IMX500): the half that the capture
    (sources.PicameraCapture) drives, on the capture thread."""

    name: str
    camera_num: int

    def controls(self) -> dict:
        """Camera controls the sensor's network needs (its frame rate)."""

    def started(self, cam) -> None:
        """The camera started: wait for what the sensor must finish first (its firmware)."""

    def read(self, metadata: dict, cam) -> Optional[SensorDetections]:
        """What the sensor reported with one frame's metadata, or None (no information)."""

    @property
    def loading(self) -> Optional[str]:
        """What the sensor is busy with before it can deliver (thread-safe), else None."""


@runtime_checkable
class Backend(Protocol):
    """One loaded detector. A frame is detected in three steps, so the pipeline can time them
    and drop or gate frames before any work is done (`detector.timed_detect` runs them):

    - ``prepare(frame)`` -> (input, transform back to the frame), or None when the frame
      carries no information for it (an IMX500 frame whose metadata has no outputs yet);
    - ``invoke(input)`` -> raw outputs (the accelerator's or interpreter's work);
    - ``postprocess(raw, transform, threshold)`` -> Detections, best first;

    ``timings(raw)`` gives times measured outside the process (the IMX500's sensor) in ms,
    ``describe()`` where it runs (for the start-up line), ``close()`` releases what it holds
    (the Hailo's device), once, when the run ends. ``sensor`` is the camera half of a backend
    that detects on the camera's sensor (it must be handed to the Pi camera source), else None.
    """

    name: str
    model_path: str
    options: DetectOptions
    labels: Mapping[int, str]
    input_size: Tuple[int, int]
    threads: Optional[int]

    @property
    def sensor(self) -> Optional[Sensor]:
        """The camera half of a backend that detects on the sensor, else None."""

    def prepare(self, frame: Frame) -> Optional[Tuple[Any, Any]]:
        """(input, transform back to the frame), or None: the frame has no information."""

    def invoke(self, prepared: Any) -> Any:
        """The raw outputs for one input."""

    def postprocess(
        self, raw: Any, transform: Any, threshold: Optional[float] = None
    ) -> Tuple[Detection, ...]:
        """Detections above the threshold, allowed and large enough, best first."""

    def timings(self, raw: Any) -> Dict[str, float]:
        """Times (ms) measured outside this process for this output."""

    def describe(self) -> str:
        """Where the model runs, for the start-up log line."""

    def close(self) -> None:
        """Release what the backend holds."""


@dataclass(frozen=True)
class LoadRequest:
    """What a loader needs: the model and labels (None: the backend's default), the options
    every backend filters with, and for interpreters how many to load with how many threads.

    `score_floor` is the lowest threshold the run may filter with (the IMX500 decodes nothing
    below it); `fallback_labels` the installed COCO labels, for an accelerator's model that
    carries none."""

    model: Optional[str]
    labels: Optional[str]
    options: DetectOptions = DetectOptions()
    workers: int = 1
    threads: Optional[int] = None
    score_floor: Optional[float] = None
    fallback_labels: Optional[str] = None


Loader = Callable[[LoadRequest], List[Backend]]


@dataclass(frozen=True)
class BackendInfo:
    """One entry of the registry.

    `loader` is "module:function" (a function of a LoadRequest returning the loaded backends,
    one per worker); `device` what the help texts call the hardware; `present(root)` tells
    whether the hardware is there (for `auto`; None: always usable); `auto_rank` orders the
    present ones for `auto` (lowest first); `tflite` says it runs a .tflite on this CPU or a
    Coral (the default model, the doctor's model check and remote probes apply); `parallel`
    that several interpreters may run side by side on consecutive frames; `crops` that it runs
    on the frames edgecam gives it, so also on crops of them (`[detect] regions`);
    `sensor_time` that its camera's sensor reports its own inference time per frame (the
    stats message and Home Assistant discovery then carry it).
    """

    name: str
    loader: str
    device: str = ""
    present: Optional[Callable[[Path], bool]] = None
    auto_rank: int = 0
    tflite: bool = False
    parallel: bool = False
    crops: bool = True
    sensor_time: bool = False

    def load(self, request: LoadRequest) -> List[Backend]:
        """The loaded backends, one per worker (the loader's module is imported now)."""
        module, _, function = self.loader.partition(":")
        loader: Loader = getattr(importlib.import_module(module), function)
        return loader(request)


def _entries(*infos: BackendInfo) -> Mapping[str, BackendInfo]:
    return MappingProxyType({i.name: i for i in infos})


REGISTRY: Mapping[str, BackendInfo] = _entries(
    BackendInfo("cpu", "edgecam.detector:load_cpu", tflite=True, parallel=True),
    BackendInfo(
        "edgetpu",
        "edgecam.detector:load_edgetpu",
        "Coral",
        lambda root: bool(find_coral_usb(root) or coral_pcie(root)),
        auto_rank=3,
        tflite=True,
    ),
    # The AI Camera first: no inference on the Pi at all.
    BackendInfo(
        "imx500",
        "edgecam.backends.imx500:load_backends",
        "AI Camera",
        lambda root: bool(imx500_subdevs(root)),
        auto_rank=1,
        crops=False,
        sensor_time=True,
    ),
    BackendInfo(
        "hailo",
        "edgecam.backends.hailo:load_backends",
        "AI Kit / AI HAT+",
        lambda root: bool(hailo_devices(root)),
        auto_rank=2,
    ),
)
"""Every backend by name, in the order the help texts list them."""

AUTO = "auto"
CHOICES: Tuple[str, ...] = (*REGISTRY, AUTO)
"""What `--detector` and `[model] detector` accept: a backend's name, or `auto`."""


def choices_help() -> str:
    """The choices with their hardware, for help texts: `cpu, edgetpu (Coral), ..., auto`."""
    return ", ".join([f"{i.name} ({i.device})" if i.device else i.name for i in REGISTRY.values()] + [AUTO])


def info(name: str) -> BackendInfo:
    """The registry entry of a concrete backend (`auto` resolved first: see resolve_backend)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector backend {name!r} ({', '.join(REGISTRY)})") from None


def detected(root: Path = Path("/")) -> List[str]:
    """The backends whose hardware is present, in the order `auto` prefers them."""
    present = [i for i in REGISTRY.values() if i.present is not None and i.present(root)]
    return [i.name for i in sorted(present, key=lambda i: i.auto_rank)]


def resolve_backend(asked: str, root: Path = Path("/")) -> str:
    """The backend to run: `asked`, or for `auto` the first accelerator present (AI Camera,
    then Hailo, then Coral), else the CPU. The choice is logged, so it is never silent."""
    if asked != AUTO:
        return asked
    found = detected(root)
    chosen = found[0] if found else "cpu"
    log.info("detector auto: %s (accelerators found: %s)", chosen, ", ".join(found) or "none")
    return chosen


def with_backend(model, backend: str):
    """`model` (the [model] config) with `detector` set to a concrete backend and the
    `delegate` alias folded in to match, so everything downstream reads one name."""
    return dataclasses.replace(model, detector=backend, delegate="edgetpu" if backend == "edgetpu" else "cpu")


def load(name: str, request: LoadRequest) -> Sequence[Backend]:
    """The backend `name` loaded for `request` (see the registry), one per worker."""
    return info(name).load(request)
