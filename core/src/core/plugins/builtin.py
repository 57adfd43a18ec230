"""The core registers its own codecs through the same hooks as any plugin."""

from __future__ import annotations

import importlib.util
from typing import Any

from ..codecs.base64 import Base64Codec
from ..codecs.datetime import DatetimeCodec
from ..codecs.dict import DictRequestCodec
from ..codecs.json import JSONCodec
from ..codecs.numpy import NumpyCodec, NumpyRequestCodec
from ..codecs.string import StringCodec, StringRequestCodec
from .hookspecs import hookimpl


@hookimpl
def core_codecs() -> list[Any]:
    codecs: list[Any] = [
        NumpyCodec,
        NumpyRequestCodec,
        StringCodec,
        StringRequestCodec,
        Base64Codec,
        DatetimeCodec,
        JSONCodec,
        DictRequestCodec,
    ]
    if importlib.util.find_spec("pandas") is not None:  # the optional `pandas` extra
        from ..codecs.pandas import PandasCodec

        codecs.append(PandasCodec)
    return codecs
