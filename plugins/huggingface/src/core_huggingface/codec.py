"""The `hf` codecs: structured pipeline values (dicts, lists, numbers, numpy
scalars) as BYTES tensors of one JSON document per element (core's `json`
codec under the name MLServer's users know), and a request or response as a
dict of such values by tensor name. Registered through the `core_codecs`
hook, so `decode_args` runtimes and clients can use them too."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.codecs import DictRequestCodec, JSONCodec
from core.codecs.json import is_structured
from core.types import RequestInput

CONTENT_TYPE = "hf"


class HuggingFaceCodec(JSONCodec):
    """A list of JSON-able values as a BYTES tensor of shape [n]: one JSON
    document per element (a pipeline's result for one input, a chat)."""

    ContentType = CONTENT_TYPE


class HuggingFaceRequestCodec(DictRequestCodec):
    """A request (or response) as `{tensor name: value}`, as core's `dict`
    codec does it, with structured values (dicts, lists of them) as `hf`
    tensors of JSON documents."""

    ContentType = CONTENT_TYPE

    @classmethod
    def encode_value(cls, name: str, value: Any) -> RequestInput:
        if is_structured(value):
            return HuggingFaceCodec.encode_input(name, value)
        if not isinstance(value, (str, np.ndarray)) and np.asarray(value).dtype == object:
            return HuggingFaceCodec.encode_input(name, list(value))
        return super().encode_value(name, value)
