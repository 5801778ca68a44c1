"""Find a TFLite interpreter (LiteRT, then tflite-runtime, then TensorFlow), load models with it,
and small free functions over a loaded interpreter (input size, input conversion, outputs), in the
manner of pycoral's `common` module."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import EdgecamError

if TYPE_CHECKING:  # numpy is imported where used, to keep `edgecam --help` fast
    import numpy as np

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
# The custom op SSD detection models end in: its presence makes a model a detector.
DETECTION_POSTPROCESS_OP = "TFLite_Detection_PostProcess"

# Module paths in order of preference; the first importable one is used.
_CANDIDATES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai_edge_litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite_runtime"),
    ("tensorflow", "tensorflow.lite", "tensorflow"),
)


@dataclass(frozen=True)
class Runtime:
    """An importable TFLite runtime: its name, version and the two entry points we use."""

    name: str
    version: str
    interpreter_class: Callable[..., Any]
    load_delegate: Callable[..., Any]

    def describe(self) -> str:
        """'name version', for logs and `--version`."""
        return f"{self.name} {self.version}"


def find_runtime() -> Runtime:
    """The preferred installed runtime, or an EdgecamError naming how to install one."""
    for name, module_path, top in _CANDIDATES:
        try:
            module = importlib.import_module(module_path)
        except ImportError:
            continue
        top_module = importlib.import_module(top)
        version = getattr(top_module, "__version__", "unknown")
        if name == "tensorflow":
            interp, delegate = module.Interpreter, module.experimental.load_delegate
        else:
            interp, delegate = module.Interpreter, module.load_delegate
        return Runtime(name, str(version), interp, delegate)
    raise EdgecamError(
        "no TFLite runtime is installed: run `pip install ai-edge-litert` (or tflite-runtime / tensorflow)"
    )


def read_model_bytes(model_path: str) -> bytes:
    """The bytes of a .tflite file, or an EdgecamError (missing, unreadable, not TFLite)."""
    if os.path.isdir(model_path):
        raise EdgecamError(_folder_given(model_path))
    if not os.path.isfile(model_path):
        raise EdgecamError(
            f"model not found: {model_path} (give --model PATH, or fetch one "
            "with `edgecam models fetch ssd_mobilenet_v1_coco`)"
        )
    try:
        with open(model_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise EdgecamError(f"cannot read model {model_path}: {exc.strerror}") from None
    # Every TFLite flatbuffer carries the file identifier "TFL3" at byte 4.
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgecamError(f"{model_path} is not a TFLite model (no TFL3 header): give a .tflite file")
    return data


def _folder_given(path: str) -> str:
    """The one line for a folder given where a model file belongs, naming the models in it."""
    try:
        models = sorted(name for name in os.listdir(path) if name.endswith(".tflite"))
    except OSError:
        models = []
    line = f"model {path} is a directory, not a model file"
    if len(models) == 1:
        return f"{line}: give the file, --model {os.path.join(path, models[0])}"
    if models:
        more = ", ..." if len(models) > 3 else ""
        return f"{line}: give one of its .tflite files with --model ({', '.join(models[:3])}{more})"
    return f"{line}, and holds no .tflite file: give --model FILE.tflite"


def is_edgetpu_model(model_bytes: bytes) -> bool:
    """True when the model was compiled for the Edge TPU (it contains the custom op)."""
    return EDGETPU_CUSTOM_OP.encode() in model_bytes


def load_interpreter(
    model_path: str,
    threads: Optional[int] = None,
    delegate: Optional[str] = None,
    runtime: Optional[Runtime] = None,
):
    """A ready interpreter (tensors allocated) for `model_path`.

    `delegate` is None for the CPU or "edgetpu" for a Coral. Every failure is an EdgecamError
    naming the model and the fix.
    """
    runtime = runtime or find_runtime()
    data = read_model_bytes(model_path)
    edgetpu = is_edgetpu_model(data)
    if edgetpu and delegate != "edgetpu":
        raise EdgecamError(
            f"{model_path} is compiled for the Edge TPU: run with "
            "`--delegate edgetpu` on a Coral, or use the CPU model"
        )
    delegates: List[Any] = []
    if delegate == "edgetpu":
        delegates.append(load_edgetpu_delegate(runtime))
    elif delegate not in (None, "", "cpu"):
        raise EdgecamError(f"unknown delegate {delegate!r}: use `cpu` or `edgetpu`")
    kwargs: Dict[str, Any] = {"model_path": model_path, "experimental_delegates": delegates or None}
    if threads:
        kwargs["num_threads"] = int(threads)
    try:
        with quiet_native_info():
            interpreter = runtime.interpreter_class(**kwargs)
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgecamError(f"cannot load model {model_path}: {first}") from None
    return interpreter


def load_edgetpu_delegate(runtime: Runtime):
    """The Edge TPU delegate, or an EdgecamError saying how to install the library."""
    try:
        # Probe with ctypes first: a failed load_delegate leaves a half-built Delegate whose
        # destructor prints a traceback.
        ctypes.CDLL(EDGETPU_LIBRARY)
        return runtime.load_delegate(EDGETPU_LIBRARY)
    except (ValueError, OSError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "not found"
        reason = reason.replace(f"{EDGETPU_LIBRARY}: ", "")
        raise EdgecamError(
            f"cannot load the Edge TPU library {EDGETPU_LIBRARY} ({reason}): install "
            "it with `sudo apt-get install libedgetpu1-std` and plug in the Coral, "
            "or run without --delegate edgetpu"
        ) from None


# The runtime prints this banner from C++ straight to fd 2 on the first CPU model; on a
# service's stderr (journald) it is noise, and it would break one-line error messages.
_NATIVE_BANNERS = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextlib.contextmanager
def quiet_native_info():
    """Hide the runtime's known INFO banners on fd 2; anything else it prints is passed on."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (e.g. embedded): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                ln
                for ln in capture.read().splitlines(keepends=True)
                if ln.strip() and not ln.strip().startswith(_NATIVE_BANNERS)
            ]
            if kept:
                os.write(2, b"".join(kept))


# -- a loaded interpreter -------------------------------------------------------------------


def input_details(interpreter) -> Mapping:
    """The details (index, shape, dtype, quantization) of the model's first input."""
    return interpreter.get_input_details()[0]


def input_size(interpreter) -> Tuple[int, int]:
    """(width, height) of the model's input image."""
    _, height, width, _ = map(int, input_details(interpreter)["shape"])
    return width, height


def input_converter(detail: Mapping) -> Callable[["np.ndarray"], "np.ndarray"]:
    """A function turning an RGB uint8 image at the input size into the input tensor
    described by `detail` (an input-details mapping; only its dtype is read).

    Quantised models carry their normalisation in the input quantisation, so raw pixels
    (uint8) or pixels shifted by 128 (int8) are what they expect; float models are fed
    values in [-1, 1], as the SSD MobileNet exports were trained.
    """
    import numpy as np

    dtype = detail["dtype"]
    if dtype == np.uint8:
        return lambda rgb: rgb[np.newaxis]
    if dtype == np.int8:
        return lambda rgb: (rgb ^ 0x80).view(np.int8)[np.newaxis]
    if dtype == np.float32:
        return lambda rgb: (rgb.astype(np.float32) * (1 / 127.5) - 1.0)[np.newaxis]
    raise EdgecamError(
        f"unsupported model input type {np.dtype(dtype).name}: use a uint8, int8 or float32 model"
    )


def set_input(interpreter, tensor: "np.ndarray", index: Optional[int] = None) -> None:
    """Copy `tensor` into the model's input (`index`: the input's details index, if known)."""
    interpreter.set_tensor(input_details(interpreter)["index"] if index is None else index, tensor)


def dequantize(values: "np.ndarray", detail: Mapping) -> "np.ndarray":
    """Output values as float32 (quantised outputs scaled by their scale and zero point)."""
    import numpy as np

    if values.dtype == np.float32:
        return values
    scale, zero = detail.get("quantization", (0.0, 0))
    return (values.astype(np.float32) - zero) * (scale or 1.0)


def output_tensors(interpreter, details: Optional[Sequence[Mapping]] = None) -> Tuple["np.ndarray", ...]:
    """Every output of the last invoke, dequantised and copied, in the model's order
    (`details`: the output details, if already read)."""
    details = interpreter.get_output_details() if details is None else details
    return tuple(dequantize(interpreter.get_tensor(d["index"]), d) for d in details)
