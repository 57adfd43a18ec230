"""Tensor data in the typed `InferTensorContents` fields of the gRPC wire.
The other form, raw bytes (`raw_input_contents`, `raw_output_contents`), has
the layout REST's binary extension shares: `core.types.raw`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadRequest, shorten
from ..types import NUMPY_DTYPES, Datatype
from .generated import inference_pb2 as pb

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


def decode_contents(
    name: str, datatype: Datatype, contents: pb.InferTensorContents, count: int | None = None
) -> Any:
    """The elements of a tensor sent in typed `contents`; `count`, when given,
    is what the shape holds: BYTES elements beyond it are not converted."""
    name = shorten(name)
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
        if count is not None and len(values) != count:
            raise BadRequest(f"tensor '{name}': shape holds {count} elements but data has {len(values)}")
        return list(values)
    if datatype in _EXACT_FIELD_TYPES:
        return np.array(values, dtype=NUMPY_DTYPES[datatype])
    return list(values)  # narrower integers: to_ndarray checks the range
