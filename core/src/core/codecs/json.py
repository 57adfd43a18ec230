"""The `json` codec: a list of JSON-able values (dicts, lists, numbers,
strings, numpy scalars and arrays) as a BYTES tensor of shape [n], one JSON
document per element: structured values such as a pipeline's results, a
chat, or an MLflow object or map column."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ..errors import CodecError
from ..types import Datatype, Parameters, RequestInput, ResponseOutput, to_ndarray
from .base import InputCodec

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _plain(value: Any) -> Any:
    """What orjson cannot write by itself: numpy scalars of any kind (orjson
    takes the common ones), tensors and arrays of object dtype as lists."""
    if isinstance(value, np.generic):
        return value.item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def is_structured(payload: Any) -> bool:
    """A non-empty list of dicts or lists: what the codec claims."""
    return isinstance(payload, list) and bool(payload) and all(isinstance(i, (dict, list)) for i in payload)


class JSONCodec(InputCodec):
    ContentType = "json"
    TypeHint = list[dict[str, Any]]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return is_structured(payload)

    @classmethod
    def dumps(cls, value: Any) -> bytes:
        try:
            return orjson.dumps(value, default=_plain, option=_OPTIONS)
        except TypeError as error:
            raise CodecError(f"{cls.ContentType} codec: {error}") from None

    @classmethod
    def encode_output(cls, name: str, payload: list[Any], **kwargs: Any) -> ResponseOutput:
        return ResponseOutput(**cls._tensor(name, payload))

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[Any]:
        return cls._decode(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: list[Any], **kwargs: Any) -> RequestInput:
        return RequestInput(**cls._tensor(name, payload))

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[Any]:
        return cls._decode(request_input)

    @classmethod
    def _tensor(cls, name: str, payload: list[Any]) -> dict[str, Any]:
        return {
            "name": name,
            "datatype": Datatype.BYTES,
            "shape": [len(payload)],
            "data": [cls.dumps(item) for item in payload],
            "parameters": Parameters(content_type=cls.ContentType),
        }

    @classmethod
    def _decode(cls, tensor: RequestInput | ResponseOutput) -> list[Any]:
        values = []
        for element in to_ndarray(tensor).ravel().tolist():
            try:
                values.append(orjson.loads(element))
            except orjson.JSONDecodeError as error:
                raise CodecError(
                    f"tensor '{tensor.name}' (content type {cls.ContentType}): element is not JSON: {error}"
                ) from None
        return values
