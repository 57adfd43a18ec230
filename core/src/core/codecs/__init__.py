"""Codecs: how tensors and requests become Python values, and back."""

from .base import InputCodec, RequestCodec
from .base64 import Base64Codec
from .datetime import DatetimeCodec
from .decorator import decode_args
from .dict import DictRequestCodec
from .json import JSONCodec
from .numpy import NumpyCodec, NumpyRequestCodec
from .registry import (
    find_input_codec,
    find_request_codec,
    input_codecs,
    register_codec,
    request_codecs,
)
from .string import StringCodec, StringRequestCodec

__all__ = [
    "Base64Codec",
    "DatetimeCodec",
    "DictRequestCodec",
    "InputCodec",
    "JSONCodec",
    "NumpyCodec",
    "NumpyRequestCodec",
    "PandasCodec",
    "RequestCodec",
    "StringCodec",
    "StringRequestCodec",
    "decode_args",
    "find_input_codec",
    "find_request_codec",
    "input_codecs",
    "register_codec",
    "request_codecs",
]


def __getattr__(name: str) -> object:
    # PandasCodec needs the optional pandas extra: import it only when asked.
    if name == "PandasCodec":
        from .pandas import PandasCodec

        return PandasCodec
    raise AttributeError(name)
