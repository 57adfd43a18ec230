"""The `dict` request codec: a request (or response) as `{tensor name:
value}`, one key per tensor, each tensor decoded by its own content type;
and back, each value encoded by the codec that takes it. For models with
several named inputs of different kinds (MLflow's tensor dicts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
    to_ndarray,
)
from .base import RequestCodec, content_type_of
from .numpy import NumpyCodec
from .registry import find_input_codec, input_codec_for
from .string import StringCodec, is_list_of


class DictRequestCodec(RequestCodec):
    """Decoding: a tensor with a content type goes through that codec; a
    BYTES tensor without one is a list of strings; any other is a numpy
    array. Encoding: a string, or a list of strings, is `str`; a value
    another codec takes (`base64`, `datetime`, ...) goes through it; the
    rest is a numpy array (`np`). Subclasses change `encode_value`."""

    ContentType = "dict"
    TypeHint = dict[str, Any]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, dict) and all(isinstance(key, str) for key in payload)

    @classmethod
    def encode_response(
        cls, model_name: str, payload: dict[str, Any], model_version: str | None = None, **kwargs: Any
    ) -> InferenceResponse:
        outputs = [ResponseOutput(**dict(cls.encode_value(name, value))) for name, value in payload.items()]
        return InferenceResponse(
            model_name=model_name,
            model_version=model_version,
            parameters=Parameters(content_type=cls.ContentType),
            outputs=outputs,
        )

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> dict[str, Any]:
        return {output.name: decode_value(output) for output in response.outputs}

    @classmethod
    def encode_request(cls, payload: dict[str, Any], **kwargs: Any) -> InferenceRequest:
        return InferenceRequest(
            parameters=Parameters(content_type=cls.ContentType),
            inputs=[cls.encode_value(name, value) for name, value in payload.items()],
        )

    @classmethod
    def decode_request(cls, request: InferenceRequest) -> dict[str, Any]:
        return {request_input.name: decode_value(request_input) for request_input in request.inputs}

    @classmethod
    def encode_value(cls, name: str, value: Any) -> RequestInput:
        if isinstance(value, str):
            value = [value]
        if is_list_of(value, str):
            return StringCodec.encode_input(name, value)
        # Structured values (lists of dicts) go to the `json` codec this way.
        codec = None if isinstance(value, np.ndarray) else find_input_codec(payload=value)
        if codec is not None:
            encoded: RequestInput = codec.encode_input(name, value)
            return encoded
        return NumpyCodec.encode_input(name, np.asarray(value))


def decode_value(tensor: RequestInput | ResponseOutput) -> Any:
    """A tensor as its content type's value: BYTES without one as strings,
    anything else without one as a numpy array."""
    content_type = content_type_of(tensor)
    if content_type is None and tensor.datatype == Datatype.BYTES:
        content_type = StringCodec.ContentType
    codec = input_codec_for(content_type) if content_type else None
    if codec is None:
        return to_ndarray(tensor)
    return codec.decode_input(tensor)  # type: ignore[arg-type]
