"""OIP tensor datatypes and the one table that maps each to a numpy dtype."""

from __future__ import annotations

from enum import Enum

import numpy as np


class Datatype(str, Enum):
    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"
    BF16 = "BF16"


# numpy has no bfloat16: BF16 values are handled as float32 in memory (every
# bfloat16 is exactly representable there). BYTES elements are Python bytes.
NUMPY_DTYPES: dict[Datatype, np.dtype] = {
    Datatype.BOOL: np.dtype(np.bool_),
    Datatype.UINT8: np.dtype(np.uint8),
    Datatype.UINT16: np.dtype(np.uint16),
    Datatype.UINT32: np.dtype(np.uint32),
    Datatype.UINT64: np.dtype(np.uint64),
    Datatype.INT8: np.dtype(np.int8),
    Datatype.INT16: np.dtype(np.int16),
    Datatype.INT32: np.dtype(np.int32),
    Datatype.INT64: np.dtype(np.int64),
    Datatype.FP16: np.dtype(np.float16),
    Datatype.FP32: np.dtype(np.float32),
    Datatype.FP64: np.dtype(np.float64),
    Datatype.BYTES: np.dtype(np.object_),
    Datatype.BF16: np.dtype(np.float32),
}

# The reverse direction, for encoding arrays. float32 maps back to FP32, not BF16.
_DATATYPES_BY_KIND: dict[np.dtype, Datatype] = {
    dtype: datatype
    for datatype, dtype in NUMPY_DTYPES.items()
    if datatype not in (Datatype.BF16, Datatype.BYTES)
}


def to_dtype(datatype: Datatype | str) -> np.dtype:
    return NUMPY_DTYPES[Datatype(datatype)]


def to_datatype(dtype: np.dtype) -> Datatype:
    """The OIP datatype for a numpy dtype; strings, bytes and objects are BYTES."""
    found = _DATATYPES_BY_KIND.get(dtype)  # the common case: a native dtype
    if found is not None:
        return found
    dtype = np.dtype(dtype)  # also numpy scalar types (np.float32, np.str_)
    found = _DATATYPES_BY_KIND.get(dtype.newbyteorder("="))
    if found is not None:
        return found
    if dtype.kind in ("U", "S", "O"):
        return Datatype.BYTES
    raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype")
