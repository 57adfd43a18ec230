"""A V2 response as MLflow's scoring server answers: `{"predictions": ...}`,
a DataFrame as records, arrays as lists, a dict as a dict of lists
(`predictions_to_json`)."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd

from core.codecs import DictRequestCodec, PandasCodec
from core.codecs.dict import decode_value
from core.types import InferenceResponse

from .errors import MLflowError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def predictions(response: InferenceResponse) -> Any:
    """The model's prediction, decoded by the response's content type: `pd`
    a DataFrame, `dict` (or several outputs) a dict, else the one output's
    value."""
    content_type = response.parameters.content_type if response.parameters is not None else None
    if content_type == PandasCodec.ContentType:
        return PandasCodec.decode_response(response).to_dict(orient="records")
    if content_type == DictRequestCodec.ContentType or len(response.outputs) != 1:
        return DictRequestCodec.decode_response(response)
    return decode_value(response.outputs[0])


def answer(response: InferenceResponse) -> bytes:
    try:
        return orjson.dumps({"predictions": predictions(response)}, default=_jsonable, option=_OPTIONS)
    except TypeError as error:
        raise MLflowError(
            500, f"the predictions of model '{response.model_name}' have no JSON form: {error}"
        ) from None


def _jsonable(value: Any) -> Any:
    """What orjson does not write itself, written as MLflow's NumpyEncoder
    does (bytes as base64 with its line breaks, times in ISO 8601); NaN,
    written by MLflow as a bare NaN (not JSON), is null here."""
    if isinstance(value, np.ndarray):
        return value.tolist()  # object arrays, and arrays orjson does not take (not contiguous)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return base64.encodebytes(bytes(value)).decode("ascii")
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (pd.Timestamp, datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} is not JSON")
