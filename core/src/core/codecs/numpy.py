"""The `np` codecs: tensors as numpy arrays."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from ..errors import CodecError
from ..types import (
    NUMPY_DTYPES,
    Datatype,
    Parameters,
    RequestInput,
    ResponseOutput,
    to_datatype,
    to_ndarray,
)
from ..types.tensors import attach_ndarray
from .base import InputCodec, SingleInputRequestCodec


def _flat_data(array: np.ndarray) -> list[Any]:
    data: list[Any] = array.ravel().tolist()
    return data


Tensor = TypeVar("Tensor", RequestInput, ResponseOutput)


def _tensor(kind: type[Tensor], name: str, payload: Any, content_type: str) -> Tensor:
    """A tensor holding `payload`'s elements as a flat list, with the array
    they came from cached for `to_ndarray` (raw and binary encodings, decoding
    on the client side), so the list is not converted back."""
    array = np.asarray(payload)
    try:
        datatype = to_datatype(array.dtype)
    except ValueError as error:
        raise CodecError(str(error)) from None
    tensor = kind(
        name=name,
        shape=list(array.shape),
        datatype=datatype,
        parameters=Parameters(content_type=content_type),
        data=_flat_data(array),
    )
    if datatype is not Datatype.BYTES and array.dtype == NUMPY_DTYPES[datatype]:
        # A copy: the list is a snapshot, and so must the array be (a model
        # may reuse its output buffer for the next request).
        attach_ndarray(tensor, array.copy())
    return tensor


class NumpyCodec(InputCodec):
    ContentType = "np"
    TypeHint = np.ndarray

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, np.ndarray)

    @classmethod
    def encode_output(cls, name: str, payload: np.ndarray, **kwargs: Any) -> ResponseOutput:
        return _tensor(ResponseOutput, name, payload, cls.ContentType)

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> np.ndarray:
        return to_ndarray(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: np.ndarray, **kwargs: Any) -> RequestInput:
        return _tensor(RequestInput, name, payload, cls.ContentType)

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> np.ndarray:
        return to_ndarray(request_input)


class NumpyRequestCodec(SingleInputRequestCodec):
    """A request with a single input, as that input's array."""

    ContentType = NumpyCodec.ContentType
    TypeHint = np.ndarray
    InputCodec = NumpyCodec
