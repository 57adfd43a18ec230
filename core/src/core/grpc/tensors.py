"""Tensor data on the gRPC wire, both forms: raw bytes (`raw_input_contents`,
`raw_output_contents`) and typed `InferTensorContents` fields.

Raw layout: little-endian, row-major, no padding; BOOL one byte per element;
BYTES elements each preceded by their length as a 4-byte little-endian
uint32; BF16 two bytes per element (the high half of a float32)."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from ..errors import BadRequest
from ..types import NUMPY_DTYPES, Datatype
from .generated import inference_pb2 as pb

# Wire dtypes: explicit little-endian, whatever the host's byte order.
_WIRE_DTYPES = {
    datatype: dtype.newbyteorder("<")
    for datatype, dtype in NUMPY_DTYPES.items()
    if datatype not in (Datatype.BYTES, Datatype.BF16)
}
_LENGTH = struct.Struct("<I")

# The InferTensorContents field that carries each datatype (FP16/BF16: none).
CONTENTS_FIELDS = {
    Datatype.BOOL: "bool_contents",
    Datatype.INT8: "int_contents",
    Datatype.INT16: "int_contents",
    Datatype.INT32: "int_contents",
    Datatype.INT64: "int64_contents",
    Datatype.UINT8: "uint_contents",
    Datatype.UINT16: "uint_contents",
    Datatype.UINT32: "uint_contents",
    Datatype.UINT64: "uint64_contents",
    Datatype.FP32: "fp32_contents",
    Datatype.FP64: "fp64_contents",
    Datatype.BYTES: "bytes_contents",
}
# Where the wire type is the numpy type itself, no range check is needed.
_EXACT_FIELD_TYPES = {Datatype.BOOL, Datatype.INT32, Datatype.INT64, Datatype.UINT32, Datatype.UINT64}
_EXACT_FIELD_TYPES |= {Datatype.FP32, Datatype.FP64}


def element_count(name: str, shape: list[int]) -> int:
    if any(dim < 0 for dim in shape):
        raise BadRequest(f"tensor '{name}': shape {shape} has a negative dimension")
    return math.prod(shape)


def decode_raw(name: str, datatype: Datatype, shape: list[int], raw: bytes) -> Any:
    """The elements of a raw tensor: a flat numpy array, or a list of bytes
    for BYTES (what `core.types.to_ndarray` takes)."""
    count = element_count(name, shape)
    if datatype == Datatype.BYTES:
        return _split_bytes(name, raw, count)
    itemsize = 2 if datatype == Datatype.BF16 else _WIRE_DTYPES[datatype].itemsize
    if len(raw) != count * itemsize:
        raise BadRequest(
            f"tensor '{name}': shape {shape} of {datatype.value} needs {count * itemsize} bytes "
            f"of raw contents, got {len(raw)}"
        )
    if datatype == Datatype.BF16:
        # bfloat16 is the high half of a float32: shift it there.
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    # A copy in native order: writable (models may change inputs in place) and
    # independent of the request message.
    return np.frombuffer(raw, dtype=_WIRE_DTYPES[datatype]).astype(NUMPY_DTYPES[datatype])


def _split_bytes(name: str, raw: bytes, count: int) -> list[bytes]:
    elements: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise BadRequest(f"tensor '{name}': raw BYTES contents end inside a length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise BadRequest(f"tensor '{name}': raw BYTES element {len(elements)} overruns the contents")
        elements.append(raw[offset : offset + length])
        offset += length
        if len(elements) > count:
            break  # reported below; do not split the rest of a huge payload
    if len(elements) != count:
        raise BadRequest(
            f"tensor '{name}': shape holds {count} elements but raw BYTES contents "
            f"{'have more' if len(elements) > count else f'have {len(elements)}'}"
        )
    return elements


def decode_contents(name: str, datatype: Datatype, contents: pb.InferTensorContents) -> Any:
    """The elements of a tensor sent in typed `contents`."""
    field = CONTENTS_FIELDS.get(datatype)
    present = [descriptor.name for descriptor, _ in contents.ListFields()]
    if field is None:
        if present:
            raise BadRequest(f"tensor '{name}': datatype {datatype.value} must be sent in raw contents")
        return np.empty(0, dtype=NUMPY_DTYPES[datatype])
    wrong = [other for other in present if other != field]
    if wrong:
        raise BadRequest(f"tensor '{name}': datatype {datatype.value} takes {field}, got {wrong[0]}")
    values = getattr(contents, field)
    if datatype == Datatype.BYTES:
        return list(values)
    if datatype in _EXACT_FIELD_TYPES:
        return np.array(values, dtype=NUMPY_DTYPES[datatype])
    return list(values)  # narrower integers: to_ndarray checks the range


def encode_raw(datatype: Datatype, array: np.ndarray) -> bytes:
    """The raw wire form of an array already in `datatype`'s numpy dtype."""
    if datatype == Datatype.BYTES:
        return b"".join(_LENGTH.pack(len(item)) + item for item in _as_bytes(array.ravel().tolist()))
    if datatype == Datatype.BF16:
        # Values held for BF16 are bfloat16 numbers widened to float32: the
        # high half is exact (other values are truncated towards zero).
        bits = np.ascontiguousarray(array, dtype="<f4").view("<u4")
        return (bits >> 16).astype("<u2").tobytes()
    return np.ascontiguousarray(array, dtype=_WIRE_DTYPES[datatype]).tobytes()


def _as_bytes(items: list[Any]) -> list[bytes]:
    return [item if isinstance(item, bytes) else str(item).encode("utf-8") for item in items]
