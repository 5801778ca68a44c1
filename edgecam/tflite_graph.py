"""Read a .tflite file's graph (operators, custom options, tensors) without running it.

A TFLite model is a FlatBuffer; only the few fields edgecam needs are read here, by their slot
numbers in the public TFLite schema (schema.fbs), so no generated code is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import flatbuffers
from flatbuffers import flexbuffers
from flatbuffers.table import Table

# Field slots from tensorflow/lite/schema/schema.fbs.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 1, 2, 4
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM, _OPCODE_BUILTIN = 0, 1, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS = 0, 1, 2, 3
_OP_OPCODE_INDEX, _OP_INPUTS, _OP_OUTPUTS, _OP_CUSTOM_OPTIONS = 0, 1, 2, 5
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_NAME, _TENSOR_QUANTIZATION = 0, 1, 2, 3, 4
_QUANT_SCALE, _QUANT_ZERO_POINT = 2, 3
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2

# BuiltinOperator enum of schema.fbs, by code (0..126; larger codes use the extended field).
_BUILTIN_NAMES = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
)
BUILTIN_CUSTOM = 32

# TensorType enum of schema.fbs, by code.
_TENSOR_TYPE_NAMES = (
    "float32",
    "float16",
    "int32",
    "uint8",
    "int64",
    "string",
    "bool",
    "int16",
    "complex64",
    "int8",
    "float64",
    "complex128",
    "uint64",
    "resource",
    "variant",
    "uint32",
    "uint16",
    "int4",
    "bfloat16",
)


def builtin_name(code: int) -> str:
    """The schema name of a builtin operator code, e.g. 3 -> 'CONV_2D' ('BUILTIN_<n>' if unknown)."""
    return _BUILTIN_NAMES[code] if 0 <= code < len(_BUILTIN_NAMES) else f"BUILTIN_{code}"


def tensor_type_name(code: int) -> str:
    """The numpy-style name of a tensor type code, e.g. 3 -> 'uint8'."""
    return _TENSOR_TYPE_NAMES[code] if 0 <= code < len(_TENSOR_TYPE_NAMES) else f"type{code}"


@dataclass(frozen=True)
class GraphTensor:
    """A tensor of the main subgraph: name, shape, type code and whether it holds constant data.

    `scale` and `zero_point` are its quantization parameters (empty when not quantized; one per
    channel for per-axis quantization).
    """

    name: str
    shape: Tuple[int, ...]
    type_code: int
    constant: bool
    scale: Tuple[float, ...] = ()
    zero_point: Tuple[int, ...] = ()

    @property
    def dtype(self) -> str:
        """The tensor type's name, e.g. 'uint8'."""
        return tensor_type_name(self.type_code)

    @property
    def size(self) -> int:
        """Number of elements (1 for a scalar)."""
        n = 1
        for d in self.shape:
            n *= max(int(d), 0)
        return n


@dataclass(frozen=True)
class GraphOp:
    """An operator of the main subgraph: builtin code or custom name, tensor indices, options."""

    builtin_code: int
    custom_name: Optional[str]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    custom_options: bytes

    @property
    def name(self) -> str:
        """The custom op's name, or the builtin's schema name (e.g. 'CONV_2D')."""
        return self.custom_name if self.custom_name else builtin_name(self.builtin_code)


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a model; `inputs` / `outputs` are the graph's tensor indices."""

    ops: Tuple[GraphOp, ...]
    tensors: Tuple[GraphTensor, ...]
    inputs: Tuple[int, ...] = ()
    outputs: Tuple[int, ...] = ()

    def custom_op(self, name: str) -> Optional[GraphOp]:
        """The first custom operator with this name, or None."""
        return next((op for op in self.ops if op.custom_name == name), None)


def _field_pos(table: Table, slot: int) -> int:
    return table.Offset(4 + 2 * slot)


def _scalar(table: Table, slot: int, flags, default=0):
    o = _field_pos(table, slot)
    return table.Get(flags, o + table.Pos) if o else default


def _vector(table: Table, slot: int) -> Tuple[int, int]:
    """(start position, length) of a vector field, (0, 0) when absent."""
    o = _field_pos(table, slot)
    if not o:
        return 0, 0
    return table.Vector(o), table.VectorLen(o)


def _table_at(table: Table, slot: int, i: int) -> Table:
    start, _ = _vector(table, slot)
    return Table(table.Bytes, table.Indirect(start + 4 * i))


def _ints(table: Table, slot: int, flags, width: int) -> Tuple[int, ...]:
    start, n = _vector(table, slot)
    return tuple(table.Get(flags, start + width * i) for i in range(n))


def _sub_table(table: Table, slot: int) -> Optional[Table]:
    o = _field_pos(table, slot)
    return Table(table.Bytes, table.Indirect(o + table.Pos)) if o else None


def _string(table: Table, slot: int) -> Optional[str]:
    o = _field_pos(table, slot)
    return table.String(o + table.Pos).decode("utf-8", "replace") if o else None


def _bytes(table: Table, slot: int) -> bytes:
    start, n = _vector(table, slot)
    return bytes(table.Bytes[start : start + n])


def read_graph(model_bytes: bytes) -> Graph:
    """Parse the main subgraph of a TFLite flatbuffer. Raises ValueError on a malformed file."""
    try:
        buf = bytearray(model_bytes)
        root = flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0)
        model = Table(buf, root)
        _, n_codes = _vector(model, _MODEL_OPERATOR_CODES)
        codes = []
        for i in range(n_codes):
            code = _table_at(model, _MODEL_OPERATOR_CODES, i)
            builtin = max(
                _scalar(code, _OPCODE_DEPRECATED_BUILTIN, flatbuffers.number_types.Int8Flags),
                _scalar(code, _OPCODE_BUILTIN, flatbuffers.number_types.Int32Flags),
            )
            codes.append((builtin, _string(code, _OPCODE_CUSTOM)))
        _, n_buffers = _vector(model, _MODEL_BUFFERS)
        has_data = []
        for i in range(n_buffers):
            b = _table_at(model, _MODEL_BUFFERS, i)
            has_data.append(
                _vector(b, _BUFFER_DATA)[1] > 0
                or _scalar(b, _BUFFER_SIZE, flatbuffers.number_types.Uint64Flags) > 0
            )
        sub = _table_at(model, _MODEL_SUBGRAPHS, 0)
        tensors = []
        _, n_tensors = _vector(sub, _SUBGRAPH_TENSORS)
        u32, i32 = flatbuffers.number_types.Uint32Flags, flatbuffers.number_types.Int32Flags
        for i in range(n_tensors):
            t = _table_at(sub, _SUBGRAPH_TENSORS, i)
            buffer_index = _scalar(t, _TENSOR_BUFFER, u32)
            quant = _sub_table(t, _TENSOR_QUANTIZATION)
            scale = _ints(quant, _QUANT_SCALE, flatbuffers.number_types.Float32Flags, 4) if quant else ()
            zero = _ints(quant, _QUANT_ZERO_POINT, flatbuffers.number_types.Int64Flags, 8) if quant else ()
            tensors.append(
                GraphTensor(
                    name=_string(t, _TENSOR_NAME) or "",
                    shape=_ints(t, _TENSOR_SHAPE, i32, 4),
                    type_code=_scalar(t, _TENSOR_TYPE, flatbuffers.number_types.Int8Flags),
                    constant=0 < buffer_index < len(has_data) and has_data[buffer_index],
                    scale=scale,
                    zero_point=zero,
                )
            )
        ops = []
        _, n_ops = _vector(sub, _SUBGRAPH_OPERATORS)
        for i in range(n_ops):
            op = _table_at(sub, _SUBGRAPH_OPERATORS, i)
            builtin, custom = codes[_scalar(op, _OP_OPCODE_INDEX, u32)]
            ops.append(
                GraphOp(
                    builtin,
                    custom,
                    _ints(op, _OP_INPUTS, i32, 4),
                    _ints(op, _OP_OUTPUTS, i32, 4),
                    _bytes(op, _OP_CUSTOM_OPTIONS),
                )
            )
        return Graph(
            tuple(ops),
            tuple(tensors),
            _ints(sub, _SUBGRAPH_INPUTS, i32, 4),
            _ints(sub, _SUBGRAPH_OUTPUTS, i32, 4),
        )
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed TFLite flatbuffer: {exc}") from None


def custom_options(op: GraphOp) -> Dict[str, Any]:
    """An operator's flexbuffer custom options as a dict (empty when it has none)."""
    if not op.custom_options:
        return {}
    value = flexbuffers.Loads(op.custom_options)
    return dict(value) if isinstance(value, dict) else {}
