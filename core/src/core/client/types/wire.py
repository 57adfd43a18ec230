"""The wire forms of the client's tensors: one tensor's data as raw bytes,
JSON data or typed contents, its parameters (REST framing left out of the
model's), and the tensor lists of REST bodies and gRPC messages."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson

from ...errors import CoreError
from ...grpc.converters import parameters_from_proto, parameters_to_proto
from ...grpc.generated import inference_pb2 as pb
from ...grpc.tensors import CONTENTS_FIELDS, decode_contents
from ...types import NUMPY_DTYPES, Datatype, Parameters
from ...types.raw import decode_raw

if TYPE_CHECKING:
    from .tensors import _Tensor

_DATATYPES = {datatype.value: datatype for datatype in Datatype}
# The typed `contents` field of each datatype (FP16 and BF16 have none).
_CONTENTS_FIELDS = {datatype.value: field for datatype, field in CONTENTS_FIELDS.items()}
# Raw numeric data as numpy reads it in place: explicitly little-endian.
_WIRE_DTYPES = {
    datatype.value: dtype.newbyteorder("<")
    for datatype, dtype in NUMPY_DTYPES.items()
    if datatype not in (Datatype.BYTES, Datatype.BF16)
}
# REST framing parameters of the binary extension: never model parameters,
# never sent over gRPC.
_FRAMING = frozenset({"binary_data_size", "binary_data", "binary_data_output"})

_TensorT = TypeVar("_TensorT", bound="_Tensor")


@contextmanager
def _value_errors() -> Iterator[None]:
    """core's server-side errors (BadRequest, CodecError...) as the plain
    ValueError a client raises, with the same message."""
    try:
        yield
    except CoreError as error:
        raise ValueError(error.message) from None


def _datatype(name: str, value: str) -> Datatype:
    found = _DATATYPES.get(value)
    if found is None:
        raise ValueError(f"tensor '{name}': unknown datatype '{value}' (one of {', '.join(_DATATYPES)})")
    return found


# Data forms


def _json_data(name: str, array: np.ndarray) -> Any:
    """An array's elements as JSON data: a flat array in native byte order
    and C order (the array itself, viewed flat, when it is both), which orjson
    writes directly; BYTES as a list of str, JSON having no bytes."""
    if array.dtype.kind in "OSU":
        return [_text(name, item) for item in array.ravel().tolist()]
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")).ravel()


def _text(name: str, item: Any) -> str:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"tensor '{name}': element {item[:40]!r} is not UTF-8, which JSON needs: "
                "send it as binary data (binary_data=True)"
            ) from None
    return item if isinstance(item, str) else str(item)


def _raw_array(name: str, datatype: str, shape: list[int], raw: bytes | memoryview) -> np.ndarray:
    wire = _WIRE_DTYPES.get(datatype)
    if wire is None:  # BYTES, BF16, or unknown
        with _value_errors():
            elements = decode_raw(name, _datatype(name, datatype), shape, raw, limited=False)
        array: np.ndarray = elements  # BF16: float32
        if isinstance(elements, list):  # BYTES
            array = np.empty(len(elements), dtype=object)
            array[:] = elements
        return array.reshape(shape)
    size = math.prod(shape) * wire.itemsize
    if len(raw) != size:
        raise ValueError(
            f"tensor '{name}': shape {shape} of {datatype} needs {size} bytes of raw data, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=wire).reshape(shape)


def _data_array(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """JSON or typed-contents data as an array. Lenient as tritonclient,
    unlike core's server-side `to_ndarray`: that one rejects float32's
    largest values in the shortest decimal form orjson writes them in."""
    kind = _datatype(name, datatype)
    try:
        if kind == Datatype.BYTES:
            items = np.asarray(data, dtype=object).ravel().tolist()
            array = np.empty(len(items), dtype=object)
            array[:] = [item.encode("utf-8") if isinstance(item, str) else item for item in items]
        else:
            array = np.asarray(data, dtype=NUMPY_DTYPES[kind])
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"tensor '{name}': data does not fit {datatype}: {error}") from None
    count = math.prod(shape)
    if array.size != count:
        raise ValueError(f"tensor '{name}': shape {shape} holds {count} elements but data has {array.size}")
    return array.reshape(shape)


def _same_data(one: _Tensor, other: _Tensor) -> bool:
    if not (one._has_data() and other._has_data()):
        return one._has_data() == other._has_data()
    try:
        return bool(np.array_equal(one.as_numpy(), other.as_numpy()))
    except ValueError:
        return False


# Parameters


def _parameters_dict(parameters: Parameters | None) -> dict[str, Any] | None:
    return (parameters.model_dump(exclude_none=True) or None) if parameters is not None else None


def _without_framing(parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not parameters:
        return None
    return {key: value for key, value in parameters.items() if key not in _FRAMING} or None


def _model_parameters(parameters: Mapping[str, Any] | None) -> Parameters | None:
    values = _without_framing(parameters)
    return None if values is None else Parameters(**values)


def _parameters_to_proto(parameters: Mapping[str, Any], target: Any) -> None:
    """core's gRPC value rules, leaving out the REST framing parameters."""
    if _FRAMING.issuperset(parameters):
        return  # the common case: only set_data_from_numpy's binary_data_size
    values = _without_framing(parameters)
    if values is not None:
        parameters_to_proto(Parameters.model_construct(**values), target)


def _parameters_from_proto(what: str, parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any] | None:
    if not parameters:
        return None
    with _value_errors():
        return _parameters_dict(parameters_from_proto(what, parameters))


# Tensor lists


def _set_raw(tensors: Sequence[_Tensor], raw: Sequence[bytes | memoryview], what: str) -> None:
    if len(raw) != len(tensors):
        raise ValueError(f"{what} has {len(raw)} entries for {len(tensors)} tensors")
    for tensor, chunk in zip(tensors, raw, strict=True):
        tensor._set_raw(chunk)


def _tensors_to_proto(tensors: Sequence[_Tensor], target: Any, raw_contents: Any, force_raw: bool) -> None:
    for tensor in tensors:
        if not tensor._has_data():
            raise ValueError(f"tensor '{tensor.name}' has no data")
    raw = force_raw or any(
        tensor._raw_data is not None or tensor.datatype not in _CONTENTS_FIELDS for tensor in tensors
    )
    for tensor in tensors:
        tensor._to_proto(target, raw_contents if raw else None)


def _tensors_from_proto(
    kind: type[_TensorT], tensors: Sequence[Any], raw: Sequence[bytes], field: str
) -> list[_TensorT]:
    """The tensors of a message, from its raw contents when it has any (what
    tritonclient reads too), else from their typed contents."""
    if raw and len(raw) != len(tensors):
        raise ValueError(f"{field} has {len(raw)} entries for {len(tensors)} tensors")
    result = []
    for index, tensor in enumerate(tensors):
        name = tensor.name
        parameters = tensor.parameters
        item = kind(
            name,
            tensor.shape[:],  # a list (faster than list() on upb containers)
            tensor.datatype,
            None,
            _parameters_from_proto(f"tensor '{name}'", parameters) if parameters else None,
        )
        if raw:
            item._raw_data = raw[index]
        else:
            with _value_errors():
                datatype = _datatype(name, item.datatype)
                item._data = decode_contents(name, datatype, tensor.contents, math.prod(item.shape))
        result.append(item)
    return result


def _split_body(body: bytes, json_length: int) -> tuple[dict[str, Any], memoryview]:
    """The JSON header of a binary REST body, and the raw bytes after it."""
    view = memoryview(body)
    if not 0 < json_length <= len(view):
        raise ValueError(f"JSON header length {json_length} does not fit a body of {len(view)} bytes")
    try:
        content = orjson.loads(view[:json_length])
    except orjson.JSONDecodeError as error:
        raise ValueError(f"invalid JSON header: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"the JSON header is not an object: {type(content).__name__}")
    return content, view[json_length:]


def _tensors_from_rest(
    kind: type[_TensorT], content: dict[str, Any], tail: memoryview | None, what: str
) -> list[_TensorT]:
    """The tensors of a REST body (`what`: "input" or "output"), their raw
    data sliced from `tail` in order of appearance."""
    entries = content.get(f"{what}s")
    if not isinstance(entries, list):
        raise ValueError(f"the body has no '{what}s' list")
    tensors = []
    offset = 0
    for entry in entries:
        try:
            tensor = kind(
                entry["name"], entry["shape"], entry["datatype"], entry.get("data"), entry.get("parameters")
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed {what}: {error!r}") from None
        size = tensor._parameters.get("binary_data_size") if tensor._parameters else None
        if size is not None:
            if tail is None:
                raise ValueError(
                    f"{what} '{tensor.name}' has binary_data_size but the body has no binary data"
                )
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(tail):
                raise ValueError(
                    f"{what} '{tensor.name}': binary_data_size {size!r} does not fit the "
                    f"{len(tail) - offset} bytes of binary data left"
                )
            if tensor._data is not None:
                raise ValueError(f"{what} '{tensor.name}' has both data and binary_data_size")
            tensor._raw_data = tail[offset : offset + size]
            offset += size
        elif tensor._data is None:
            raise ValueError(f"{what} '{tensor.name}' has no data")
        tensors.append(tensor)
    if tail is not None and offset != len(tail):
        raise ValueError(
            f"{len(tail)} bytes of binary data follow the JSON header, but the {what}s' "
            f"binary_data_size add up to {offset}"
        )
    return tensors
