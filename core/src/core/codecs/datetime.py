"""The `datetime` codec: BYTES tensors of ISO 8601 timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import CodecError
from ..types import RequestInput, ResponseOutput
from .base import InputCodec
from .string import decode_strings, is_list_of, strings_tensor


def _decode(tensor: Any) -> list[datetime]:
    try:
        return [datetime.fromisoformat(item) for item in decode_strings(tensor)]
    except ValueError as error:
        raise CodecError(f"tensor '{tensor.name}' is not ISO 8601: {error}") from None


class DatetimeCodec(InputCodec):
    ContentType = "datetime"
    TypeHint = list[datetime]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return is_list_of(payload, datetime)

    @classmethod
    def encode_output(cls, name: str, payload: list[datetime], **kwargs: Any) -> ResponseOutput:
        data = [item.isoformat() for item in payload]
        return strings_tensor(ResponseOutput, name, data, cls.ContentType)

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[datetime]:
        return _decode(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: list[datetime], **kwargs: Any) -> RequestInput:
        data = [item.isoformat() for item in payload]
        return strings_tensor(RequestInput, name, data, cls.ContentType)

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[datetime]:
        return _decode(request_input)
