"""The `np` codecs: tensors as numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CodecError
from ..types import (
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
    to_datatype,
    to_ndarray,
)
from .base import InputCodec, RequestCodec


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


class NumpyRequestCodec(RequestCodec):
    """A request with a single input, as that input's array."""

    ContentType = NumpyCodec.ContentType
    TypeHint = np.ndarray

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, np.ndarray)

    @classmethod
    def encode_response(
        cls, model_name: str, payload: np.ndarray, model_version: str | None = None, **kwargs: Any
    ) -> InferenceResponse:
        output = NumpyCodec.encode_output(kwargs.get("output_name", "output-0"), payload)
        return InferenceResponse(
            model_name=model_name,
            model_version=model_version,
            parameters=Parameters(content_type=cls.ContentType),
            outputs=[output],
        )

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> np.ndarray:
        if len(response.outputs) != 1:
            raise CodecError(f"np response codec needs 1 output, got {len(response.outputs)}")
        return NumpyCodec.decode_output(response.outputs[0])

    @classmethod
    def encode_request(cls, payload: np.ndarray, **kwargs: Any) -> InferenceRequest:
        request_input = NumpyCodec.encode_input(kwargs.get("input_name", "input-0"), payload)
        return InferenceRequest(parameters=Parameters(content_type=cls.ContentType), inputs=[request_input])

    @classmethod
    def decode_request(cls, request: InferenceRequest) -> np.ndarray:
        if len(request.inputs) != 1:
            raise CodecError(
                f"np request codec needs exactly 1 input, got {len(request.inputs)}; "
                "send one tensor, or several columns with content_type 'pd'"
            )
        return NumpyCodec.decode_input(request.inputs[0])
