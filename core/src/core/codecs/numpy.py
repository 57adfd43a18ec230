"""The `np` codecs: tensors as numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CodecError
from ..types import (
    Parameters,
    RequestInput,
    ResponseOutput,
    to_datatype,
    to_ndarray,
)
from .base import InputCodec, SingleInputRequestCodec


def _flat_data(array: np.ndarray) -> list[Any]:
    data: list[Any] = array.ravel().tolist()
    return data


def _tensor_fields(array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array)
    try:
        datatype = to_datatype(array.dtype)
    except ValueError as error:
        raise CodecError(str(error)) from None
    return {"shape": list(array.shape), "datatype": datatype, "data": _flat_data(array)}


class NumpyCodec(InputCodec):
    ContentType = "np"
    TypeHint = np.ndarray

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, np.ndarray)

    @classmethod
    def encode_output(cls, name: str, payload: np.ndarray, **kwargs: Any) -> ResponseOutput:
        return ResponseOutput(
            name=name, parameters=Parameters(content_type=cls.ContentType), **_tensor_fields(payload)
        )

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> np.ndarray:
        return to_ndarray(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: np.ndarray, **kwargs: Any) -> RequestInput:
        return RequestInput(
            name=name, parameters=Parameters(content_type=cls.ContentType), **_tensor_fields(payload)
        )

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> np.ndarray:
        return to_ndarray(request_input)


class NumpyRequestCodec(SingleInputRequestCodec):
    """A request with a single input, as that input's array."""

    ContentType = NumpyCodec.ContentType
    TypeHint = np.ndarray
    InputCodec = NumpyCodec
