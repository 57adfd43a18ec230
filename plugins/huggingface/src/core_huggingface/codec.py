"""The `hf` codecs: structured pipeline values (dicts, lists, numbers, numpy
scalars) as BYTES tensors of one JSON document per element, and a request or
response as a dict of such values by tensor name. Registered through the
`core_codecs` hook, so `decode_args` runtimes and clients can use them too."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from core.codecs import InputCodec, RequestCodec, find_input_codec
from core.codecs.string import is_list_of
from core.errors import CodecError
from core.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
    to_ndarray,
)

CONTENT_TYPE = "hf"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _plain(value: Any) -> Any:
    """What orjson cannot write by itself: numpy scalars of any kind (orjson
    takes the common ones), tensors and arrays as lists."""
    if isinstance(value, np.generic):
        return value.item()
    tolist = getattr(value, "tolist", None)  # torch tensors, arrays of object dtype
    if callable(tolist):
        return tolist()
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_plain, option=_OPTIONS)
    except TypeError as error:
        raise CodecError(f"{CONTENT_TYPE} codec: {error}") from None


def _loads(name: str, element: Any) -> Any:
    try:
        return orjson.loads(element)
    except orjson.JSONDecodeError as error:
        raise CodecError(
            f"tensor '{name}' (content type {CONTENT_TYPE}): element is not JSON: {error}"
        ) from None


def _structured(payload: Any) -> bool:
    return (
        isinstance(payload, list)
        and bool(payload)
        and all(isinstance(item, (dict, list)) for item in payload)
    )


class HuggingFaceCodec(InputCodec):
    """A list of JSON-able values as a BYTES tensor of shape [n]: one JSON
    document per element (a pipeline's result for one input, a chat)."""

    ContentType = CONTENT_TYPE
    TypeHint = list[dict[str, Any]]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return _structured(payload)

    @classmethod
    def encode_output(cls, name: str, payload: list[Any], **kwargs: Any) -> ResponseOutput:
        return ResponseOutput(**_tensor(name, payload))

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[Any]:
        return _decode(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: list[Any], **kwargs: Any) -> RequestInput:
        return RequestInput(**_tensor(name, payload))

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[Any]:
        return _decode(request_input)


def _tensor(name: str, payload: list[Any]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": Datatype.BYTES,
        "shape": [len(payload)],
        "data": [dumps(item) for item in payload],
        "parameters": Parameters(content_type=CONTENT_TYPE),
    }


def _decode(tensor: RequestInput | ResponseOutput) -> list[Any]:
    return [_loads(tensor.name, element) for element in to_ndarray(tensor).ravel().tolist()]


class HuggingFaceRequestCodec(RequestCodec):
    """A request (or response) as `{tensor name: value}`: each tensor decoded
    by its own content type (JSON documents for `hf`, strings for `str`,
    arrays otherwise); and back, each value encoded by the codec that takes it."""

    ContentType = CONTENT_TYPE
    TypeHint = dict[str, Any]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, dict) and all(isinstance(key, str) for key in payload)

    @classmethod
    def encode_response(
        cls, model_name: str, payload: dict[str, Any], model_version: str | None = None, **kwargs: Any
    ) -> InferenceResponse:
        outputs = [
            ResponseOutput(**_encode_value(name, value).model_dump()) for name, value in payload.items()
        ]
        return InferenceResponse(
            model_name=model_name,
            model_version=model_version,
            parameters=Parameters(content_type=CONTENT_TYPE),
            outputs=outputs,
        )

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> dict[str, Any]:
        return {output.name: _decode_value(output) for output in response.outputs}

    @classmethod
    def encode_request(cls, payload: dict[str, Any], **kwargs: Any) -> InferenceRequest:
        return InferenceRequest(
            parameters=Parameters(content_type=CONTENT_TYPE),
            inputs=[_encode_value(name, value) for name, value in payload.items()],
        )

    @classmethod
    def decode_request(cls, request: InferenceRequest) -> dict[str, Any]:
        return {request_input.name: _decode_value(request_input) for request_input in request.inputs}


def _encode_value(name: str, value: Any) -> RequestInput:
    if isinstance(value, str):
        value = [value]
    if is_list_of(value, str):
        from core.codecs import StringCodec

        return StringCodec.encode_input(name, value)
    if _structured(value):
        return HuggingFaceCodec.encode_input(name, value)
    codec = find_input_codec(payload=value)
    if codec is None:
        array = np.asarray(value)
        if array.dtype == object:
            return HuggingFaceCodec.encode_input(name, list(value))
        from core.codecs import NumpyCodec

        return NumpyCodec.encode_input(name, array)
    encoded: RequestInput = codec.encode_input(name, value)
    return encoded


def _decode_value(tensor: RequestInput | ResponseOutput) -> Any:
    content_type = tensor.parameters.content_type if tensor.parameters is not None else None
    if content_type == CONTENT_TYPE:
        return _decode(tensor)
    if content_type is None and tensor.datatype == Datatype.BYTES:
        content_type = "str"
    codec = find_input_codec(content_type=content_type) if content_type else None
    if codec is None:
        return to_ndarray(tensor)
    return codec.decode_input(tensor)  # type: ignore[arg-type]
