"""The `hf` codecs: structured pipeline values (dicts, lists, numbers, numpy
scalars) as BYTES tensors of one JSON document per element, and a request or
response as a dict of such values by tensor name. Registered through the
`core_codecs` hook, so `decode_args` runtimes and clients can use them too."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from core.codecs import DictRequestCodec, InputCodec
from core.errors import CodecError
from core.types import Datatype, Parameters, RequestInput, ResponseOutput, to_ndarray

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


class HuggingFaceRequestCodec(DictRequestCodec):
    """A request (or response) as `{tensor name: value}`, as core's `dict`
    codec does it, with structured values (dicts, lists of them) as `hf`
    tensors of JSON documents."""

    ContentType = CONTENT_TYPE

    @classmethod
    def encode_value(cls, name: str, value: Any) -> RequestInput:
        if _structured(value):
            return HuggingFaceCodec.encode_input(name, value)
        if not isinstance(value, (str, np.ndarray)) and np.asarray(value).dtype == object:
            return HuggingFaceCodec.encode_input(name, list(value))
        return super().encode_value(name, value)
