"""The `pd` request codec: a whole request as a pandas DataFrame, one input
per column. Needs the `pandas` extra (`pip install core[pandas]`)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CodecError
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
)
from .base import RequestCodec, content_type_of
from .base64 import Base64Codec
from .datetime import DatetimeCodec
from .numpy import NumpyCodec
from .registry import find_input_codec
from .string import StringCodec


def _column_tensor(cls: type, name: str, series: pd.Series) -> Any:
    """One column as a tensor of shape [rows, 1]: numbers and booleans as
    they are; datetimes as ISO 8601 text (`datetime`), bytes as base64
    (`base64`), anything else as text (`str`), so each comes back as it was."""
    values = series.to_numpy()
    if isinstance(series.dtype, pd.DatetimeTZDtype) or values.dtype.kind == "M":
        data = [item.isoformat() for item in series.dt.to_pydatetime()]
        return _bytes_tensor(cls, name, data, DatetimeCodec.ContentType)
    if values.dtype.kind in "OUS" or isinstance(series.dtype, pd.StringDtype):
        if len(values) and all(isinstance(item, bytes) for item in values):
            data = [base64.b64encode(item).decode("ascii") for item in values]
            return _bytes_tensor(cls, name, data, Base64Codec.ContentType)
        data = [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in values]
        return _bytes_tensor(cls, name, data, StringCodec.ContentType)
    tensor = NumpyCodec.encode_output(name, values.reshape(-1, 1))
    return cls(
        **{field: getattr(tensor, field) for field in ("name", "shape", "datatype", "data", "parameters")}
    )


def _bytes_tensor(cls: type, name: str, data: list[str], content_type: str) -> Any:
    return cls(
        name=name,
        datatype=Datatype.BYTES,
        shape=[len(data), 1],
        data=data,
        parameters=Parameters(content_type=content_type),
    )


def _column_values(tensor: Any) -> Any:
    """A tensor decoded as a DataFrame column: one value per row."""
    content_type = content_type_of(tensor)
    if content_type is None:
        content_type = (
            StringCodec.ContentType if tensor.datatype == Datatype.BYTES else NumpyCodec.ContentType
        )
    codec = find_input_codec(content_type)
    if codec is None:
        raise CodecError(f"input '{tensor.name}': no codec for content type '{content_type}'")
    values = codec.decode_input(tensor)
    if isinstance(values, np.ndarray):
        rows = values.shape[0] if values.ndim else 1
        if values.ndim > 1 and values.size == rows:
            return values.reshape(rows)
        if values.ndim > 1:
            return list(values)
    return values


class PandasCodec(RequestCodec):
    ContentType = "pd"
    TypeHint = pd.DataFrame

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, pd.DataFrame)

    @classmethod
    def encode_response(
        cls,
        model_name: str,
        payload: pd.DataFrame,
        model_version: str | None = None,
        **kwargs: Any,
    ) -> InferenceResponse:
        outputs = [_column_tensor(ResponseOutput, str(name), payload[name]) for name in payload]
        return InferenceResponse(
            model_name=model_name,
            model_version=model_version,
            parameters=Parameters(content_type=cls.ContentType),
            outputs=outputs,
        )

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> pd.DataFrame:
        return _frame(response.outputs)

    @classmethod
    def encode_request(cls, payload: pd.DataFrame, **kwargs: Any) -> InferenceRequest:
        inputs = [_column_tensor(RequestInput, str(name), payload[name]) for name in payload]
        return InferenceRequest(parameters=Parameters(content_type=cls.ContentType), inputs=inputs)

    @classmethod
    def decode_request(cls, request: InferenceRequest) -> pd.DataFrame:
        return _frame(request.inputs)


def _frame(tensors: list[Any]) -> pd.DataFrame:
    columns = {tensor.name: _column_values(tensor) for tensor in tensors}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise CodecError(f"pd codec needs columns of one length, got {lengths}")
    return pd.DataFrame(columns)
