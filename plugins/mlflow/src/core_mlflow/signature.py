"""An MLflow signature as V2 metadata, and request data converted to the
signature's types where nothing is lost."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, DataType, ParamSchema, Schema, TensorSpec

from core.errors import BadRequest
from core.types import MetadataTensor, Parameters, to_datatype

# A column's V2 datatype and content type, by MLflow type.
_COLUMNS: dict[DataType, tuple[str, str | None]] = {
    DataType.double: ("FP64", None),
    DataType.float: ("FP32", None),
    DataType.long: ("INT64", None),
    DataType.integer: ("INT32", None),
    DataType.boolean: ("BOOL", None),
    DataType.string: ("BYTES", "str"),
    DataType.binary: ("BYTES", "base64"),
    DataType.datetime: ("BYTES", "datetime"),
}
# The name of a tensor the signature does not name (and of the predictions).
UNNAMED = "input-0"
PREDICTIONS = "predictions"


def is_columns(schema: Schema | None) -> bool:
    return schema is not None and not schema.is_tensor_spec()


def tensors_metadata(schema: Schema | None, unnamed: str) -> list[MetadataTensor]:
    """Each column or tensor of a signature's inputs or outputs."""
    if schema is None:
        return []
    return [_metadata(spec, unnamed) for spec in schema.inputs]


def _metadata(spec: ColSpec | TensorSpec, unnamed: str) -> MetadataTensor:
    parameters: dict[str, Any] = {}
    if isinstance(spec, TensorSpec):
        datatype, shape = to_datatype(spec.type).value, list(spec.shape)
        parameters["content_type"] = "np"
    else:
        shape = [-1, 1]
        if isinstance(spec.type, DataType):
            datatype, content_type = _COLUMNS.get(spec.type, ("BYTES", "json"))
        else:  # Array, Object, Map: one JSON document per row
            datatype, content_type = "BYTES", "json"
            parameters["mlflow_type"] = repr(spec.type)
        if content_type is not None:
            parameters["content_type"] = content_type
    if not spec.required:
        parameters["optional"] = True
    return MetadataTensor(
        name=spec.name or unnamed, datatype=datatype, shape=shape, parameters=Parameters(**parameters)
    )


def params_metadata(params: ParamSchema | None) -> list[dict[str, Any]]:
    if params is None:
        return []
    return [
        {
            "name": p.name,
            "type": p.dtype.name,
            "default": p.default,
            "shape": list(p.shape) if p.shape else None,
        }
        for p in params.params
    ]


def describe(signature: ModelSignature | None) -> str:
    if signature is None:
        return "none: inputs are decoded by content type (pd or np)"
    return "columns" if is_columns(signature.inputs) else "tensors"


# Conversions


def convert(name: str, values: Any, expected: np.dtype[Any], kind: str) -> Any:
    """`values` (an array or a Series) as `expected`: as they are when they
    already are; cast when numpy calls the cast safe (int64 into float64,
    float32 into float64) or when every value comes through unchanged (2.0
    into a long); a 400 naming the `kind` (column or tensor) and both types
    otherwise."""
    try:
        array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    except ValueError:  # nested lists of different lengths
        raise BadRequest(f"{kind} '{name}': its rows have different lengths") from None
    if array.dtype == expected or expected.kind in "OUSM":
        return values
    if array.dtype.kind in "biuf" and expected.kind in "biuf":
        if np.can_cast(array.dtype, expected, "safe"):
            return _like(values, array.astype(expected))
        with np.errstate(invalid="ignore", over="ignore"):
            converted = array.astype(expected)
        if np.array_equal(converted.astype(array.dtype), array, equal_nan=array.dtype.kind == "f"):
            return _like(values, converted)
    raise BadRequest(
        f"{kind} '{name}': cannot convert {array.dtype} to {expected} without losing data; "
        f"send {expected} values"
    )


def _like(values: Any, array: np.ndarray) -> Any:
    return pd.Series(array, index=values.index, name=values.name) if isinstance(values, pd.Series) else array


def convert_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The columns the schema types, converted (`convert`); then a missing
    required column is a 400 naming it and the columns expected."""
    for spec in schema.inputs:
        if spec.name in frame.columns and isinstance(spec.type, DataType) and spec.type in _NUMERIC:
            frame[spec.name] = convert(spec.name, frame[spec.name], np.dtype(spec.type.to_numpy()), "column")
    missing = [spec.name for spec in schema.inputs if spec.required and spec.name not in frame.columns]
    if missing:
        expected = ", ".join(str(spec.name) for spec in schema.inputs)
        raise BadRequest(f"missing column '{missing[0]}'; the model's columns: {expected}")
    return frame


_NUMERIC = {DataType.double, DataType.float, DataType.long, DataType.integer}


def convert_tensors(data: Any, schema: Schema) -> Any:
    """A tensor, or a dict of them, as the schema's dtypes (`convert`)."""
    specs = schema.inputs
    if isinstance(data, dict):
        by_name = {spec.name: spec for spec in specs}
        return {
            name: convert(name, value, by_name[name].type, "tensor") if name in by_name else value
            for name, value in data.items()
        }
    return convert(specs[0].name or UNNAMED, data, specs[0].type, "tensor")
