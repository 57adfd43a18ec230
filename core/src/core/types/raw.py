"""The raw tensor layout shared by the gRPC `raw_*_contents` fields and the
REST binary tensor extension.

Little-endian, row-major, no padding; BOOL one byte per element; BYTES
elements each preceded by their length as a 4-byte little-endian uint32;
BF16 two bytes per element (the high half of a float32)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ..errors import BadRequest, InferenceError, shorten
from .dataplane import ResponseOutput
from .datatypes import NUMPY_DTYPES, Datatype
from .limits import element_count
from .tensors import to_ndarray

# Wire dtypes: explicit little-endian, whatever the host's byte order.
_WIRE_DTYPES: dict[Datatype, np.dtype] = {
    datatype: dtype.newbyteorder("<")
    for datatype, dtype in NUMPY_DTYPES.items()
    if datatype not in (Datatype.BYTES, Datatype.BF16)
}
_LENGTH = struct.Struct("<I")

Buffer = bytes | memoryview


def itemsize(datatype: Datatype) -> int | None:
    """Bytes per element in the raw layout; None for BYTES (variable)."""
    if datatype == Datatype.BYTES:
        return None
    return 2 if datatype == Datatype.BF16 else _WIRE_DTYPES[datatype].itemsize


def decode_raw(name: str, datatype: Datatype, shape: list[int], raw: Buffer, *, limited: bool = True) -> Any:
    """The elements of a raw tensor: a flat numpy array, or a list of bytes
    for BYTES (what `core.types.to_ndarray` takes). The shape is checked
    first (dimensions, and unless not `limited`, as on a client reading a
    response, the BYTES element limit: `core.types.limits`)."""
    count = element_count(name, shape, datatype if limited else None)
    size = itemsize(datatype)
    if size is None:
        return _split_bytes(name, raw, count)
    if len(raw) != count * size:
        raise BadRequest(
            f"tensor '{shorten(name)}': shape {shape} of {datatype.value} needs {count * size} bytes "
            f"of raw data, got {len(raw)}"
        )
    if datatype == Datatype.BF16:
        # bfloat16 is the high half of a float32: shift it there.
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    # A copy in native order: writable (models may change inputs in place) and
    # independent of the request buffer.
    return np.frombuffer(raw, dtype=_WIRE_DTYPES[datatype]).astype(NUMPY_DTYPES[datatype])


def _split_bytes(name: str, raw: Buffer, count: int) -> list[bytes]:
    same = _split_same_length(raw, count)
    if same is not None:
        return same
    name = shorten(name)
    elements: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise BadRequest(f"tensor '{name}': raw BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise BadRequest(
                f"tensor '{name}': raw BYTES element {len(elements)} of {length} bytes overruns the data"
            )
        elements.append(bytes(raw[offset : offset + length]))
        offset += length
        if len(elements) > count:
            break  # reported below; do not split the rest of a huge payload
    if len(elements) != count:
        raise BadRequest(
            f"tensor '{name}': shape holds {count} elements but raw BYTES data "
            f"{'has more' if len(elements) > count else f'has {len(elements)}'}"
        )
    return elements


def _split_same_length(raw: Buffer, count: int) -> list[bytes] | None:
    """The elements when all `count` of them have the length of the first
    one (the common case, and that of a flood of tiny elements), read with
    numpy in one pass instead of element by element; None otherwise."""
    if count == 0 or len(raw) < 4:
        return [] if count == 0 and len(raw) == 0 else None
    (length,) = _LENGTH.unpack_from(raw, 0)
    stride = 4 + length
    if len(raw) != count * stride:
        return None
    lengths = np.ndarray((count,), dtype="<u4", buffer=raw, strides=(stride,))
    if not (lengths == length).all():
        return None
    if length == 0:
        return [b""] * count
    # Unstructured void elements become bytes, trailing NULs included.
    elements: list[bytes] = np.ndarray(
        (count,), dtype=f"V{length}", buffer=raw, offset=4, strides=(stride,)
    ).tolist()
    return elements


def encode_raw(datatype: Datatype, array: np.ndarray) -> bytes:
    """The raw form of an array already in `datatype`'s numpy dtype."""
    if datatype == Datatype.BYTES:
        return b"".join(_LENGTH.pack(len(item)) + item for item in _as_bytes(array.ravel().tolist()))
    if datatype == Datatype.BF16:
        # Values held for BF16 are bfloat16 numbers widened to float32: the
        # high half is exact (other values are truncated towards zero).
        bits = np.ascontiguousarray(array, dtype="<f4").view("<u4")
        return (bits >> 16).astype("<u2").tobytes()
    return np.ascontiguousarray(array, dtype=_WIRE_DTYPES[datatype]).tobytes()


def encode_output(model_name: str, output: ResponseOutput) -> bytes:
    """The raw form of a model's output; data that does not fit the output's
    shape or datatype is the model's fault (500), not the client's."""
    try:
        return encode_raw(output.datatype, to_ndarray(output))
    except (BadRequest, ValueError, TypeError, OverflowError) as error:
        message = error.message if isinstance(error, BadRequest) else str(error)
        raise InferenceError(
            f"model '{model_name}' returned output '{output.name}' that cannot be encoded: {message}"
        ) from None


def _as_bytes(items: list[Any]) -> list[bytes]:
    return [item if isinstance(item, bytes) else str(item).encode("utf-8") for item in items]
