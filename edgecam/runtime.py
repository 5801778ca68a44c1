"""Find a TFLite interpreter (LiteRT, then tflite-runtime, then TensorFlow) and load models with it."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from .errors import EdgecamError

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

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
    raise EdgecamError("no TFLite runtime is installed: run `pip install ai-edge-litert` "
                       "(or tflite-runtime / tensorflow)")


def _read_model_bytes(model_path: str) -> bytes:
    if not os.path.exists(model_path):
        raise EdgecamError(f"model not found: {model_path} (give --model PATH, or fetch one "
                           "with `edgecam models fetch ssd_mobilenet_v1_coco`)")
    try:
        with open(model_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise EdgecamError(f"cannot read model {model_path}: {exc.strerror}") from None
    # Every TFLite flatbuffer carries the file identifier "TFL3" at byte 4.
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgecamError(f"{model_path} is not a TFLite model (no TFL3 header): "
                           "give a .tflite file")
    return data


def is_edgetpu_model(model_bytes: bytes) -> bool:
    """True when the model was compiled for the Edge TPU (it contains the custom op)."""
    return EDGETPU_CUSTOM_OP.encode() in model_bytes


def load_interpreter(model_path: str, threads: Optional[int] = None,
                     delegate: Optional[str] = None, runtime: Optional[Runtime] = None):
    """A ready interpreter (tensors allocated) for `model_path`.

    `delegate` is None for the CPU or "edgetpu" for a Coral. Every failure is an EdgecamError
    naming the model and the fix.
    """
    runtime = runtime or find_runtime()
    data = _read_model_bytes(model_path)
    edgetpu = is_edgetpu_model(data)
    if edgetpu and delegate != "edgetpu":
        raise EdgecamError(f"{model_path} is compiled for the Edge TPU: run with "
                           "`--delegate edgetpu` on a Coral, or use the CPU model")
    delegates: List[Any] = []
    if delegate == "edgetpu":
        delegates.append(load_edgetpu_delegate(runtime))
    elif delegate not in (None, "", "cpu"):
        raise EdgecamError(f"unknown delegate {delegate!r}: use `cpu` or `edgetpu`")
    kwargs = {"model_path": model_path, "experimental_delegates": delegates or None}
    if threads:
        kwargs["num_threads"] = int(threads)
    try:
        interpreter = runtime.interpreter_class(**kwargs)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgecamError(f"cannot load model {model_path}: {first}") from None
    return interpreter


def load_edgetpu_delegate(runtime: Runtime):
    """The Edge TPU delegate, or an EdgecamError saying how to install the library."""
    try:
        return runtime.load_delegate(EDGETPU_LIBRARY)
    except (ValueError, OSError, RuntimeError) as exc:
        raise EdgecamError(f"cannot load the Edge TPU delegate ({EDGETPU_LIBRARY}: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'not found'}): "
                           "install it with `sudo apt-get install libedgetpu1-std` and plug in the "
                           "Coral, or run without --delegate") from None
