"""What a .tflite model is, read from its graph without running it: tensors, ops, Mult-Adds, params.

Mult-Adds and parameters are counted the way the MobileNets paper counts them: only the
convolution and fully-connected layers, where nearly all the work and weights are.

- CONV_2D:           out_h * out_w * out_c * k_h * k_w * in_c
- DEPTHWISE_CONV_2D: out_h * out_w * out_c * k_h * k_w
- FULLY_CONNECTED:   in * out (per batch row)

Parameters are the elements of the constant weight and bias tensors of those layers, each tensor
counted once even when shared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .errors import EdgecamError
from .runtime import DETECTION_POSTPROCESS_OP, EDGETPU_CUSTOM_OP, read_model_bytes
from .tflite_graph import Graph, GraphOp, GraphTensor, custom_options, read_graph

CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED = 3, 4, 9
_WEIGHTED_OPS = (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)
# Names the SSD post-process outputs carry, in the op's output order.
_SSD_OUTPUT_ROLES = ("boxes", "classes", "scores", "count")


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, shape, dtype and quantization (scale/zero point, or None)."""

    name: str
    shape: Tuple[int, ...]
    dtype: str
    scale: Optional[float] = None
    zero_point: Optional[int] = None
    role: str = ""

    def to_dict(self) -> dict:
        """JSON form."""
        d = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quantization": (
                None if self.scale is None else {"scale": self.scale, "zero_point": self.zero_point}
            ),
        }
        if self.role:
            d["role"] = self.role
        return d


@dataclass(frozen=True)
class SsdOptions:
    """The TFLite_Detection_PostProcess options that matter to a user."""

    num_classes: int
    max_detections: int
    score_threshold: Optional[float] = None
    iou_threshold: Optional[float] = None

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "num_classes": self.num_classes,
            "max_detections": self.max_detections,
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
        }


@dataclass(frozen=True)
class ModelInfo:
    """Everything `edgecam models info` reports about one model."""

    path: str
    size_bytes: int
    inputs: Tuple[TensorInfo, ...]
    outputs: Tuple[TensorInfo, ...]
    op_counts: Dict[str, int] = field(default_factory=dict)
    edgetpu: bool = False
    ssd: Optional[SsdOptions] = None
    macs: int = 0
    params: int = 0

    @property
    def is_detector(self) -> bool:
        """True when the graph ends in the SSD post-process op (a detection model)."""
        return self.ssd is not None

    def to_dict(self) -> dict:
        """JSON form (the `models info --json` contract)."""
        return {
            "v": 1,
            "model": self.path,
            "size_bytes": self.size_bytes,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "ops": dict(self.op_counts),
            "edgetpu": self.edgetpu,
            "detection_postprocess": self.ssd.to_dict() if self.ssd else None,
            "macs": self.macs,
            "params": self.params,
        }


def _quant(t: GraphTensor) -> Tuple[Optional[float], Optional[int]]:
    # Per-axis quantization has many scales; only graph inputs/outputs are shown and they are
    # per-tensor in every model edgecam runs, so the first pair is the one that matters.
    if not t.scale:
        return None, None
    return float(f"{t.scale[0]:.8g}"), int(t.zero_point[0]) if t.zero_point else 0


def _tensor_info(t: GraphTensor, shape: Optional[Tuple[int, ...]] = None, role: str = "") -> TensorInfo:
    scale, zero = _quant(t)
    return TensorInfo(t.name, tuple(shape if shape is not None else t.shape), t.dtype, scale, zero, role)


def ssd_options(graph: Graph) -> Optional[SsdOptions]:
    """The SSD post-process options of a detection graph, or None for other models."""
    op = graph.custom_op(DETECTION_POSTPROCESS_OP)
    if op is None:
        return None
    opts = custom_options(op)

    def num(key, kind, default=None):
        v = opts.get(key, default)
        return kind(v) if v is not None else None

    per_class = num("max_classes_per_detection", int, 1) or 1
    return SsdOptions(
        num_classes=num("num_classes", int, 0),
        max_detections=num("max_detections", int, 0) * per_class,
        score_threshold=num("nms_score_threshold", float),
        iou_threshold=num("nms_iou_threshold", float),
    )


def _outputs(graph: Graph, ssd: Optional[SsdOptions]) -> Tuple[TensorInfo, ...]:
    op = graph.custom_op(DETECTION_POSTPROCESS_OP)
    roles: Dict[int, str] = {}
    if op is not None:
        roles = dict(zip(op.outputs, _SSD_OUTPUT_ROLES))
    out = []
    for i in graph.outputs:
        t = graph.tensors[i]
        role = roles.get(i, "")
        shape = t.shape
        # The post-process op sizes its outputs only at run time; the graph leaves them empty.
        if role and not shape and ssd is not None:
            n = ssd.max_detections
            shape = {"boxes": (1, n, 4), "classes": (1, n), "scores": (1, n), "count": (1,)}[role]
        out.append(_tensor_info(t, shape, role))
    return tuple(out)


def op_macs(graph: Graph, op: GraphOp) -> int:
    """Mult-Adds of one operator (0 for ops that are not convolutions or fully connected)."""
    if op.custom_name or op.builtin_code not in _WEIGHTED_OPS or len(op.inputs) < 2:
        return 0
    if op.inputs[1] < 0 or not op.outputs:
        return 0
    w = graph.tensors[op.inputs[1]].shape
    out = graph.tensors[op.outputs[0]].shape
    if op.builtin_code == FULLY_CONNECTED:
        # weights are [out, in]; the output's leading dims are the batch rows.
        if len(w) != 2:
            return 0
        rows = 1
        for d in out[:-1]:
            rows *= max(d, 1)
        return rows * w[0] * w[1]
    if len(w) != 4 or len(out) != 4:
        return 0
    _, out_h, out_w, out_c = out
    if op.builtin_code == CONV_2D:
        _, k_h, k_w, in_c = w  # [out_c, k_h, k_w, in_c]
        return out_h * out_w * out_c * k_h * k_w * in_c
    _, k_h, k_w, _ = w  # depthwise: [1, k_h, k_w, out_c]
    return out_h * out_w * out_c * k_h * k_w


def count_macs(graph: Graph) -> int:
    """Total Mult-Adds of the graph's convolution and fully-connected layers."""
    return sum(op_macs(graph, op) for op in graph.ops)


def count_params(graph: Graph) -> int:
    """Elements of the constant weight and bias tensors of convolution / fully-connected layers."""
    seen = set()
    for op in graph.ops:
        if op.custom_name or op.builtin_code not in _WEIGHTED_OPS:
            continue
        for i in op.inputs[1:3]:
            if i >= 0 and graph.tensors[i].constant:
                seen.add(i)
    return sum(graph.tensors[i].size for i in seen)


def analyze(model_bytes: bytes, path: str = "") -> ModelInfo:
    """ModelInfo of a model given as bytes. Raises EdgecamError on a malformed model."""
    try:
        graph = read_graph(model_bytes)
    except ValueError as exc:
        raise EdgecamError(
            f"{path or 'model'} is not a readable TFLite model ({exc}): give a .tflite file"
        ) from None
    ssd = ssd_options(graph)
    return ModelInfo(
        path=path,
        size_bytes=len(model_bytes),
        inputs=tuple(_tensor_info(graph.tensors[i]) for i in graph.inputs),
        outputs=_outputs(graph, ssd),
        op_counts=dict(sorted(Counter(op.name for op in graph.ops).items(), key=lambda kv: (-kv[1], kv[0]))),
        edgetpu=graph.custom_op(EDGETPU_CUSTOM_OP) is not None,
        ssd=ssd,
        macs=count_macs(graph),
        params=count_params(graph),
    )


def model_info(path: str) -> ModelInfo:
    """ModelInfo of the model file at `path`; EdgecamError naming the file when it is unusable."""
    data = read_model_bytes(path)
    return analyze(data, path)


def human(n: float) -> str:
    """A count in the paper's millions for tables: 76_525_312 -> '76.5 M', 467_593 -> '0.47 M'."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} G"
    if n >= 1e7:
        return f"{n / 1e6:.1f} M"
    if n >= 1e4:
        return f"{n / 1e6:.2f} M"
    return f"{int(n)}"


def _short(name: str, width: int = 60) -> str:
    # Converters fuse layer names with ';' into very long tensor names; the tail is the layer.
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def _tensor_line(t: TensorInfo) -> str:
    q = f"  scale={t.scale:g} zero_point={t.zero_point}" if t.scale is not None else ""
    role = f" ({t.role})" if t.role else ""
    shape = "x".join(str(d) for d in t.shape) if t.shape else "?"
    return f"  {_short(t.name)}{role}: {shape} {t.dtype}{q}"


def format_info(info: ModelInfo) -> str:
    """The human-readable `models info` report."""
    kind = (
        "Edge TPU compiled"
        if info.edgetpu
        else "SSD detector"
        if info.ssd
        else "classifier (no detection post-process)"
    )
    lines: List[str] = [f"model: {info.path} ({info.size_bytes:,} bytes)", f"kind: {kind}", "inputs:"]
    lines += [_tensor_line(t) for t in info.inputs]
    lines.append("outputs:")
    lines += [_tensor_line(t) for t in info.outputs]
    if info.ssd:
        s = info.ssd
        lines.append(
            f"detection post-process: num_classes={s.num_classes} "
            f"max_detections={s.max_detections}"
            + (f" score_threshold={s.score_threshold:g}" if s.score_threshold is not None else "")
            + (f" iou_threshold={s.iou_threshold:g}" if s.iou_threshold is not None else "")
        )
    lines.append("ops: " + ", ".join(f"{name} x{n}" for name, n in info.op_counts.items()))
    note = " (layers inside the Edge TPU op are not visible)" if info.edgetpu else ""
    lines.append(f"Mult-Adds: {human(info.macs)} ({info.macs:,}){note}")
    lines.append(f"parameters: {human(info.params)} ({info.params:,}){note}")
    return "\n".join(lines)
