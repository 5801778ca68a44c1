"""Read a .tflite file's graph (operators, custom options, tensors) without running it.

A TFLite model is a FlatBuffer; only the few fields edgecam needs are read here, by their slot
numbers in the public TFLite schema (schema.fbs), so no generated code is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import flatbuffers
from flatbuffers import flexbuffers
from flatbuffers.table import Table

# Field slots from tensorflow/lite/schema/schema.fbs.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 1, 2, 4
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM, _OPCODE_BUILTIN = 0, 1, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_OPERATORS = 0, 3
_OP_OPCODE_INDEX, _OP_INPUTS, _OP_OUTPUTS, _OP_CUSTOM_OPTIONS = 0, 1, 2, 5
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_NAME = 0, 1, 2, 3
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


@dataclass(frozen=True)
class GraphTensor:
    """A tensor of the main subgraph: name, shape, type code and whether it holds constant data."""

    name: str
    shape: Tuple[int, ...]
    type_code: int
    constant: bool


@dataclass(frozen=True)
class GraphOp:
    """An operator of the main subgraph: builtin code or custom name, tensor indices, options."""

    builtin_code: int
    custom_name: Optional[str]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    custom_options: bytes


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a model."""

    ops: Tuple[GraphOp, ...]
    tensors: Tuple[GraphTensor, ...]

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


def _string(table: Table, slot: int) -> Optional[str]:
    o = _field_pos(table, slot)
    return table.String(o + table.Pos).decode("utf-8", "replace") if o else None


def _bytes(table: Table, slot: int) -> bytes:
    start, n = _vector(table, slot)
    return bytes(table.Bytes[start:start + n])


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
            builtin = max(_scalar(code, _OPCODE_DEPRECATED_BUILTIN, flatbuffers.number_types.Int8Flags),
                          _scalar(code, _OPCODE_BUILTIN, flatbuffers.number_types.Int32Flags))
            codes.append((builtin, _string(code, _OPCODE_CUSTOM)))
        _, n_buffers = _vector(model, _MODEL_BUFFERS)
        has_data = []
        for i in range(n_buffers):
            b = _table_at(model, _MODEL_BUFFERS, i)
            has_data.append(_vector(b, _BUFFER_DATA)[1] > 0
                            or _scalar(b, _BUFFER_SIZE, flatbuffers.number_types.Uint64Flags) > 0)
        sub = _table_at(model, _MODEL_SUBGRAPHS, 0)
        tensors = []
        _, n_tensors = _vector(sub, _SUBGRAPH_TENSORS)
        u32, i32 = flatbuffers.number_types.Uint32Flags, flatbuffers.number_types.Int32Flags
        for i in range(n_tensors):
            t = _table_at(sub, _SUBGRAPH_TENSORS, i)
            buffer_index = _scalar(t, _TENSOR_BUFFER, u32)
            tensors.append(GraphTensor(
                name=_string(t, _TENSOR_NAME) or "",
                shape=_ints(t, _TENSOR_SHAPE, i32, 4),
                type_code=_scalar(t, _TENSOR_TYPE, flatbuffers.number_types.Int8Flags),
                constant=0 < buffer_index < len(has_data) and has_data[buffer_index]))
        ops = []
        _, n_ops = _vector(sub, _SUBGRAPH_OPERATORS)
        for i in range(n_ops):
            op = _table_at(sub, _SUBGRAPH_OPERATORS, i)
            builtin, custom = codes[_scalar(op, _OP_OPCODE_INDEX, u32)]
            ops.append(GraphOp(builtin, custom, _ints(op, _OP_INPUTS, i32, 4),
                               _ints(op, _OP_OUTPUTS, i32, 4), _bytes(op, _OP_CUSTOM_OPTIONS)))
        return Graph(tuple(ops), tuple(tensors))
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed TFLite flatbuffer: {exc}") from None


def custom_options(op: GraphOp) -> Dict[str, Any]:
    """An operator's flexbuffer custom options as a dict (empty when it has none)."""
    if not op.custom_options:
        return {}
    value = flexbuffers.Loads(op.custom_options)
    return dict(value) if isinstance(value, dict) else {}
