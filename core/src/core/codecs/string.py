"""The `str` codecs: BYTES tensors as lists of UTF-8 strings."""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import CodecError
from ..types import (
    Datatype,
    Parameters,
    RequestInput,
    ResponseOutput,
    to_ndarray,
)
from .base import InputCodec, SingleInputRequestCodec


def is_list_of(payload: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(payload, list) and all(isinstance(item, kind) for item in payload)


def decode_strings(tensor: Any) -> list[str]:
    try:
        return [item.decode("utf-8") for item in to_ndarray(tensor).ravel()]
    except UnicodeDecodeError as error:
        raise CodecError(f"tensor '{tensor.name}' is not valid UTF-8: {error}") from None


TensorT = TypeVar("TensorT", RequestInput, ResponseOutput)


def strings_tensor(cls: type[TensorT], name: str, payload: list[Any], content_type: str) -> TensorT:
    """A BYTES tensor of one element per row: shape [n, 1]."""
    return cls(
        name=name,
        datatype=Datatype.BYTES,
        shape=[len(payload), 1],
        data=list(payload),
        parameters=Parameters(content_type=content_type),
    )


class StringCodec(InputCodec):
    ContentType = "str"
    TypeHint = list[str]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return is_list_of(payload, str)

    @classmethod
    def encode_output(cls, name: str, payload: list[str], **kwargs: Any) -> ResponseOutput:
        return strings_tensor(ResponseOutput, name, payload, cls.ContentType)

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[str]:
        return decode_strings(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: list[str], **kwargs: Any) -> RequestInput:
        return strings_tensor(RequestInput, name, payload, cls.ContentType)

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[str]:
        return decode_strings(request_input)


class StringRequestCodec(SingleInputRequestCodec):
    """A request with a single BYTES input, as a list of strings."""

    ContentType = StringCodec.ContentType
    TypeHint = list[str]
    InputCodec = StringCodec
