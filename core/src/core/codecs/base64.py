"""The `base64` codec: BYTES tensors whose elements are base64 text, decoded
to raw bytes (images, audio, serialised objects)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..errors import CodecError
from ..types import RequestInput, ResponseOutput, to_ndarray
from .base import InputCodec
from .string import is_list_of, strings_tensor


def _decode(tensor: Any) -> list[bytes]:
    try:
        return [base64.b64decode(item, validate=True) for item in to_ndarray(tensor).ravel()]
    except (binascii.Error, ValueError) as error:
        raise CodecError(f"tensor '{tensor.name}' is not valid base64: {error}") from None


def _encode(payload: list[bytes]) -> list[str]:
    return [base64.b64encode(item).decode("ascii") for item in payload]


class Base64Codec(InputCodec):
    ContentType = "base64"
    TypeHint = list[bytes]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return is_list_of(payload, bytes)

    @classmethod
    def encode_output(cls, name: str, payload: list[bytes], **kwargs: Any) -> ResponseOutput:
        return strings_tensor(ResponseOutput, name, _encode(payload), cls.ContentType)

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[bytes]:
        return _decode(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: list[bytes], **kwargs: Any) -> RequestInput:
        return strings_tensor(RequestInput, name, _encode(payload), cls.ContentType)

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[bytes]:
        return _decode(request_input)
