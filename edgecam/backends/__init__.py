"""Detector backends: where inference runs, behind the one interface the pipeline uses.

Every backend turns a Frame into Detections (label, class_id, score, a box normalised
x1, y1, x2, y2 in the frame's main image) in three steps, so the pipeline can time them
and drop or gate frames before any work is done:

- ``prepare(frame)`` -> (input, transform back to the frame), or None when the frame carries
  no information for it (an IMX500 frame whose metadata has no outputs yet);
- ``invoke(input)`` -> raw outputs (the accelerator's or interpreter's work);
- ``postprocess(raw, transform, threshold)`` -> Detections, best first;
- ``timings(raw)`` -> times measured outside the process (the IMX500's sensor), in ms;
- ``close()`` releases what the backend holds (the Hailo's device), once, when the run ends.

Each also has ``name``, ``model_path``, ``options`` (DetectOptions),
``labels``, ``input_size`` (for a camera's low-resolution stream) and ``threads``.

Backends: ``cpu`` and ``edgetpu`` are edgecam.detector.Detector (a TFLite interpreter, with or
without the Coral delegate); ``imx500`` reads the detections the Raspberry Pi AI Camera made on
its sensor (no inference on the CPU); ``hailo`` runs a HEF on the AI Kit / AI HAT+.
A backend whose hardware or packages are missing raises an EdgecamError naming the apt
package; nothing ever falls back to the CPU silently.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

BACKENDS = ("cpu", "edgetpu", "imx500", "hailo")
"""The backends `--detector` chooses from (plus `auto`, which picks one of them)."""

ACCELERATORS = ("imx500", "hailo")
"""Backends that are not a TFLite interpreter: one per device, models of their own (.rpk, .hef)."""


def resolve_backend(asked: str, root: Path = Path("/")) -> str:
    """The backend to run: `asked`, or for `auto` the first accelerator present (AI Camera,
    then Hailo, then Coral), else the CPU. The choice is logged, so it is never silent."""
    if asked != "auto":
        return asked
    from .presence import detected
    found = detected(root)
    chosen = found[0] if found else "cpu"
    log.info("detector auto: %s (accelerators found: %s)", chosen, ", ".join(found) or "none")
    return chosen


def with_backend(model, backend: str):
    """`model` (the [model] config) with `detector` set to a concrete backend and the
    `delegate` alias folded in to match, so everything downstream reads one name."""
    return dataclasses.replace(model, detector=backend,
                               delegate="edgetpu" if backend == "edgetpu" else "cpu")


def load_accelerator(name: str, model: Optional[str], labels: Optional[str], options,
                     fallback_labels: Optional[str] = None, score_floor: Optional[float] = None):
    """The imx500 or hailo backend, ready (firmware handed over, HEF configured).

    `score_floor`: the lowest threshold the run may filter with (the IMX500 decodes nothing
    below it); default the options' threshold."""
    if name == "imx500":
        from .imx500 import Imx500Backend
        return Imx500Backend.load(model, labels, options, fallback_labels, score_floor)
    if name == "hailo":
        from .hailo import HailoBackend
        return HailoBackend.load(model, labels, options, fallback_labels)
    raise ValueError(f"{name} is not an accelerator backend ({', '.join(ACCELERATORS)})")
