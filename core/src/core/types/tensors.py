"""Turning OIP tensor data (flat or nested JSON lists) into numpy arrays, with
the checks the protocol implies: known datatype, element types, shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadRequest, shorten
from .datatypes import NUMPY_DTYPES, Datatype
from .limits import element_count

_CACHE = "_ndarray"

# Range limits by numpy dtype, computed once (np.iinfo/np.finfo are slow to build).
_INT_LIMITS = {
    dtype: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for dtype in NUMPY_DTYPES.values()
    if dtype.kind in "iu"
}
_FLOAT_LIMITS = {dtype: float(np.finfo(dtype).max) for dtype in NUMPY_DTYPES.values() if dtype.kind == "f"}

# Which numpy kinds a JSON-decoded list may have for each datatype family.
_ALLOWED_KINDS = {"b": "b", "u": "ui", "i": "ui", "f": "uif"}


def to_ndarray(tensor: Any) -> np.ndarray:
    """The tensor's data as an array of its datatype and shape.

    `tensor` is a RequestInput or ResponseOutput. The result is cached on the
    tensor, so codecs and the dataplane can both ask for it at no extra cost.
    (The cache sits in the instance __dict__ outside the declared fields:
    pydantic neither validates nor serialises it, and a pydantic private
    attribute would cost every request model an extra initialisation.)"""
    cached: _Cached | None = tensor.__dict__.get(_CACHE)
    if cached is not None and cached.data is tensor.data and cached.shape is tensor.shape:
        return cached.array
    array = _convert(tensor.name, tensor.datatype, tensor.shape, tensor.data)
    object.__setattr__(tensor, _CACHE, _Cached(array, tensor.data, tensor.shape))
    return array


def attach_ndarray(tensor: Any, array: np.ndarray) -> None:
    """Cache `array` as `tensor`'s array form: `tensor.data` was just built
    from it (a codec encoding an array), so `to_ndarray` need not convert the
    data back. `array` must be what `to_ndarray` would return: of the
    datatype's numpy dtype, in the tensor's shape, and owned by the tensor
    (not a view of an array the caller keeps)."""
    object.__setattr__(tensor, _CACHE, _Cached(array, tensor.data, tensor.shape))


class _Cached:
    """The cached array and the data and shape it came from. It compares by
    identity, so pydantic's `==` on tensors (which compares instance dicts
    first) falls back to the declared fields instead of comparing arrays; and
    a tensor whose data or shape was replaced (`model_copy(update=...)`, an
    assignment) is converted again."""

    __slots__ = ("array", "data", "shape")

    def __init__(self, array: np.ndarray, data: Any, shape: Any) -> None:
        self.array = array
        self.data = data
        self.shape = shape


def _convert(name: str, datatype: Datatype, shape: list[int], data: Any) -> np.ndarray:
    # The shape first: dimensions, and the BYTES element limit before any conversion.
    expected = element_count(name, shape, datatype)
    name = shorten(name)
    if data is None:
        raise BadRequest(f"tensor '{name}' has no data")
    is_bytes = datatype == Datatype.BYTES
    array = _bytes_array(name, data, expected) if is_bytes else _numeric_array(name, datatype, data)
    if array.size != expected:
        # BYTES data is converted no further than one element past the shape.
        found = "more" if is_bytes and array.size > expected else array.size
        raise BadRequest(f"tensor '{name}': shape {shape} holds {expected} elements but data has {found}")
    return array.reshape(shape)


def _numeric_array(name: str, datatype: Datatype, data: Any) -> np.ndarray:
    target = NUMPY_DTYPES[datatype]
    if isinstance(data, np.ndarray):
        raw = data
    else:
        try:
            raw = np.asarray(data)
        except ValueError as error:  # ragged nesting
            raise BadRequest(f"tensor '{name}': data is not a regular array: {error}") from None
    if raw.dtype == target:
        return raw
    if raw.size == 0:
        return raw.astype(target)
    if target.kind in "iu" and raw.dtype.kind in "fO" and not isinstance(data, np.ndarray):
        # numpy reads ints above 2**63 mixed with smaller ones as float64 (losing
        # precision), and ints beyond 64 bits as objects: check the Python ints.
        exact = _python_ints(name, datatype, data, raw.shape)
        if exact is not None:
            return exact
    if raw.dtype.kind not in _ALLOWED_KINDS[target.kind]:
        raise BadRequest(
            f"tensor '{name}': datatype {datatype.value} needs "
            f"{_describe(target)} elements, got {_describe(raw.dtype)}"
        )
    if target.kind in "iu" and raw.dtype.kind in "iu":
        low, high = _INT_LIMITS[target]
        if raw.min() < low or raw.max() > high:
            raise BadRequest(f"tensor '{name}': values out of range for {datatype.value} [{low}, {high}]")
    if target.kind == "f" and raw.dtype.kind == "f" and target.itemsize < raw.itemsize:
        # Only a value beyond the target's largest finite one can overflow to
        # inf; infinities and NaN sent as such stay what they are. A value
        # just past it that rounds to it is in range: the shortest decimal
        # of float32's largest value (3.4028235e38, as orjson writes it) is.
        limit = _FLOAT_LIMITS[target]
        if raw.max() > limit or raw.min() < -limit:
            with np.errstate(over="ignore"):
                converted = raw.astype(target)
            if (np.isinf(converted) & np.isfinite(raw)).any():
                raise BadRequest(f"tensor '{name}': values out of range for {datatype.value}")
            return converted
    return raw.astype(target)


def _python_ints(name: str, datatype: Datatype, data: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    values = np.array(data, dtype=object).ravel().tolist()
    if not all(isinstance(value, int) for value in values):
        return None
    info = np.iinfo(NUMPY_DTYPES[datatype])
    if min(values) < info.min or max(values) > info.max:
        raise BadRequest(
            f"tensor '{name}': values out of range for {datatype.value} [{info.min}, {info.max}]"
        )
    return np.array(values, dtype=NUMPY_DTYPES[datatype]).reshape(shape)


def _bytes_array(name: str, data: Any, expected: int) -> np.ndarray:
    """The elements as a flat object array; stops once past `expected`
    elements (the caller reports the mismatch), so data far larger than its
    shape is not converted in full."""
    if type(data) is list:
        if len(data) > expected:
            data = data[: expected + 1]
        # The common cases, a flat list of str (JSON) or of bytes (raw, gRPC), in bulk.
        if all(type(item) is str for item in data):
            data = [item.encode("utf-8") for item in data]
        if all(type(item) is bytes for item in data):
            array = np.empty(len(data), dtype=object)
            array[:] = data
            return array
    flat: list[bytes] = []
    stack = [data] if not isinstance(data, list) else list(reversed(data))
    while stack and len(flat) <= expected:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, bytes):
            flat.append(item)
        elif isinstance(item, str):
            flat.append(item.encode("utf-8"))
        else:
            raise BadRequest(
                f"tensor '{name}': datatype BYTES needs string elements, got {type(item).__name__}"
            )
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array


def _describe(dtype: np.dtype) -> str:
    return {"b": "boolean", "u": "integer", "i": "integer", "f": "number"}.get(
        dtype.kind, "string" if dtype.kind in "US" else "mixed"
    )
