"""KServe's V1 protocol as Open Inference Protocol requests and responses:
V1 `instances` become an `InferenceRequest` that any runtime already
understands, and the first output of its answer becomes the V1 `predictions`
(or `explanations`). Nothing here knows HTTP."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from .codecs.numpy import NumpyCodec
from .codecs.registry import find_request_codec
from .codecs.string import StringCodec
from .errors import BadRequest, InferenceError
from .types import Datatype, InferenceRequest, InferenceResponse, Parameters, RequestInput, to_ndarray

DEFAULT_INPUT_NAME = "input-0"

# Content type of a request of named columns; its codec comes with pandas.
_RECORDS_CONTENT_TYPE = "pd"


class V1Request(BaseModel):
    """The body of `:predict` and `:explain` (for the OpenAPI document: the
    body is parsed by `v1_request`)."""

    instances: list[Any] | None = None
    inputs: list[Any] | None = None


class V1ModelsResponse(BaseModel):
    models: list[str]


class V1PredictResponse(BaseModel):
    predictions: list[Any]


class V1ExplainResponse(BaseModel):
    explanations: list[Any]


def v1_request(body: Any, input_name: str = DEFAULT_INPUT_NAME) -> InferenceRequest:
    """The OIP request for a V1 body: `{"instances": [...]}`, or `{"inputs": [...]}`
    with the same meaning.

    - numbers (nested lists of them): one input of the nested lists' shape,
      INT64, FP64 or BOOL as the values are;
    - strings: one BYTES input with content type `str`;
    - objects (row records): one input per key, and request content type `pd`
      when the pandas codec is installed, so a runtime gets a DataFrame."""
    if not isinstance(body, dict):
        raise BadRequest(f"a V1 request is a JSON object, got {type(body).__name__}")
    instances = body.get("instances", body.get("inputs"))
    if instances is None:
        raise BadRequest('a V1 request needs "instances" (or "inputs")')
    if not isinstance(instances, list) or not instances:
        raise BadRequest('"instances" must be a non-empty list')
    if all(isinstance(instance, dict) for instance in instances):
        return _records_request(instances)
    tensor = _tensor(input_name, _regular_array(instances))
    # Strings as `str` for the whole request, so single-input runtimes decode
    # them to a list of strings; numbers keep the model's own request codec.
    strings = tensor.datatype == Datatype.BYTES
    return InferenceRequest(
        inputs=[tensor], parameters=Parameters(content_type=StringCodec.ContentType) if strings else None
    )


def _regular_array(values: list[Any], what: str = "instances") -> np.ndarray:
    """`values` as an array of numbers, booleans or strings; a 400 for ragged
    nesting and for mixed or other element types."""
    try:
        array = np.asarray(values)
    except ValueError:
        raise BadRequest(f"{what} are not a regular array (nested lists of different lengths)") from None
    if array.dtype.kind not in "biufU":
        raise BadRequest(f"{what} must be numbers, booleans or strings, in nested lists of equal length")
    if array.dtype.kind == "U" and not all(
        isinstance(item, str) for item in np.asarray(values, dtype=object).ravel()
    ):
        # numpy turns [1, "a"] into strings: mixed values are a mistake, not text.
        raise BadRequest(f"{what} mix strings with other values")
    return array


def _records_request(records: list[dict[str, Any]]) -> InferenceRequest:
    keys = list(records[0])
    for index, record in enumerate(records):
        if set(record) != set(keys):
            raise BadRequest(f"instance {index} has keys {sorted(record)}, instance 0 has {sorted(keys)}")
    inputs = []
    for key in keys:
        column = _regular_array([record[key] for record in records], f"values of '{key}'")
        # A column of scalars is [rows, 1], as the pd codec makes them.
        inputs.append(_tensor(key, column.reshape(-1, 1) if column.ndim == 1 else column))
    content_type = _RECORDS_CONTENT_TYPE if find_request_codec(_RECORDS_CONTENT_TYPE) else None
    return InferenceRequest(
        inputs=inputs, parameters=Parameters(content_type=content_type) if content_type else None
    )


def _tensor(name: str, array: np.ndarray) -> RequestInput:
    if array.dtype.kind == "U":
        tensor = StringCodec.encode_input(name, array.ravel().tolist())
        tensor.shape = list(array.shape)
        return tensor
    return NumpyCodec.encode_input(name, array)


def v1_predictions(response: InferenceResponse) -> list[Any]:
    """The first output of an OIP response as nested lists: one item per
    instance. BYTES elements stay bytes (the JSON encoder writes them as text)."""
    if not response.outputs:
        raise InferenceError(f"model '{response.model_name}' returned no outputs")
    values: list[Any] = to_ndarray(response.outputs[0]).tolist()
    return values
