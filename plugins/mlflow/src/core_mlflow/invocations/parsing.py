"""An `/invocations` body as a V2 request, read as MLflow's scoring server
reads it: JSON with one of `dataframe_split`, `dataframe_records`,
`instances` or `inputs` (and the model's `params`), CSV, or Parquet. The
request carries the data as it comes; the model converts it to its
signature (it knows the signature, this process may not)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd

from core.codecs import JSONCodec, NumpyCodec, PandasCodec, StringCodec
from core.codecs.base import content_type_of
from core.errors import BadRequest, shorten
from core.rest.body import check_json_depth, parse_json
from core.types import TRANSPORT_PARAMETERS, InferenceRequest, Parameters, RequestInput

from .errors import MLflowError

CSV = "text/csv"
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
MEDIA_TYPES = (CSV, JSON, PARQUET)

SPLIT, RECORDS, INSTANCES, INPUTS = "dataframe_split", "dataframe_records", "instances", "inputs"
FORMATS = (SPLIT, RECORDS, INSTANCES, INPUTS)
PARAMS = "params"

# Request parameters that core or its clients read: a model's params of these
# names would be taken for them (and never reach the model).
RESERVED_PARAMS = TRANSPORT_PARAMETERS
# The name of the one tensor of `inputs` or `instances` sent as a list, as the
# model names a tensor its signature leaves unnamed.
UNNAMED = "input-0"


def media_type(header: str | None) -> str:
    """The body's media type, checked as MLflow checks it: UTF-8 only, and no
    parameter but `charset` (MLflow 1's `format=pandas-split` is a body key
    since MLflow 2). 415 otherwise."""
    supported = ", ".join(MEDIA_TYPES)
    if not header:
        raise MLflowError(415, f"no Content-Type header; send one of {supported}")
    mime, *pairs = header.split(";")
    parameters = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key.strip():
            parameters[key.strip().lower()] = value.strip().strip('"')
    charset = parameters.pop("charset", "utf-8")
    if charset.lower() != "utf-8":
        raise MLflowError(415, f"the scoring server only supports UTF-8, not charset {shorten(charset)}")
    if parameters:
        raise MLflowError(
            415,
            f"unrecognised Content-Type parameters: {shorten(', '.join(parameters))}; since MLflow 2 "
            f"the format is a key of the JSON body ({', '.join(FORMATS)})",
        )
    mime = mime.strip().lower()
    if mime not in MEDIA_TYPES:
        raise MLflowError(
            415, f"Content-Type {shorten(repr(header))} is not supported; send one of {supported}"
        )
    return mime


def inference_request(mime: str, body: bytes) -> InferenceRequest:
    if mime == CSV:
        return frame_request(_read_csv(body))
    if mime == PARQUET:
        return frame_request(_read_parquet(body))
    return _json_request(body)


def _read_csv(body: bytes) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(body))
    except Exception as error:  # pandas raises parser, empty-data, Unicode and value errors
        raise MLflowError(400, _unreadable("CSV", "to_csv", error)) from None


def _read_parquet(body: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(body))
    except ImportError:
        raise MLflowError(
            415, "Parquet bodies need pyarrow installed in the server; send JSON or CSV"
        ) from None
    except Exception as error:
        raise MLflowError(400, _unreadable("Parquet", "to_parquet", error)) from None


def _unreadable(kind: str, writer: str, error: Exception) -> str:
    return (
        f"cannot read the body as a {kind} DataFrame (as pandas.DataFrame.{writer}() writes it): "
        f"{shorten(str(error))}"
    )


def _parse(body: bytes) -> Any:
    try:
        return parse_json(body)
    except BadRequest as error:
        # MLflow's own clients write NaN and Infinity (Python's json does), and
        # its server reads them: so does this one, in the rare bodies that hold them.
        if b"NaN" not in body and b"Infinity" not in body:
            raise
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise error from None
        check_json_depth(body)
        return document


def _json_request(body: bytes) -> InferenceRequest:
    document = _parse(body)
    expected = f"a JSON object with exactly one of the keys {', '.join(FORMATS)}"
    if not isinstance(document, dict):
        raise MLflowError(400, f"the body must be {expected}; got {type(document).__name__}")
    keys = [key for key in FORMATS if key in document]
    if len(keys) != 1:
        raise MLflowError(
            400, f"the body must be {expected}; got the keys {shorten(', '.join(document)) or '(none)'}"
        )
    # Other keys are left out, as MLflow does.
    key = keys[0]
    data = document[key]
    if key == SPLIT:
        request = frame_request(_split_frame(data))
    elif key == RECORDS:
        request = frame_request(_records_frame(data))
    else:
        request = _tensors_request(key, data)
    params = _params(document.get(PARAMS))
    if params:
        request.parameters = Parameters(**params, content_type=_content_type(request))
    return request


def _params(params: Any) -> dict[str, Any]:
    """The model's params, as the V2 request's parameters; the model checks them."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise MLflowError(
            400, f"'params' must be a JSON object of the model's params, not {type(params).__name__}"
        )
    reserved = sorted(RESERVED_PARAMS.intersection(params))
    if reserved:
        raise MLflowError(
            400, f"param '{reserved[0]}' cannot be sent: core reads a request parameter of that name"
        )
    return params


def _content_type(request: InferenceRequest) -> str | None:
    return request.parameters.content_type if request.parameters is not None else None


# DataFrames


def _split_frame(data: Any) -> pd.DataFrame:
    if not isinstance(data, dict):
        raise MLflowError(400, f"'{SPLIT}' must be a JSON object, not {type(data).__name__}")
    fields = set(data)
    if "data" not in fields or fields - {"columns", "data", "index"}:
        raise MLflowError(
            400,
            f"'{SPLIT}' takes the fields 'data' and optionally 'columns' and 'index'; "
            f"got {shorten(', '.join(sorted(fields)))}",
        )
    try:
        return pd.DataFrame(data=data["data"], columns=data.get("columns"), index=data.get("index"))
    except Exception as error:  # pandas: mismatched shapes, bad index
        raise MLflowError(
            400, f"'{SPLIT}' is not a DataFrame in 'split' orient: {shorten(str(error))}"
        ) from None


def _records_frame(data: Any) -> pd.DataFrame:
    if not isinstance(data, list):
        raise MLflowError(400, f"'{RECORDS}' must be a list of records, not {type(data).__name__}")
    try:
        return pd.DataFrame(data=data)
    except Exception as error:
        raise MLflowError(
            400, f"'{RECORDS}' is not a DataFrame in 'records' orient: {shorten(str(error))}"
        ) from None


def frame_request(frame: pd.DataFrame) -> InferenceRequest:
    """One input per column (core's `pd` request): numbers and text by
    PandasCodec; columns holding lists or dicts (MLflow's array, object and
    map columns), or text with missing values, as JSON documents, which keep
    both (PandasCodec would write their text)."""
    names = [str(column) for column in frame.columns]
    if len(set(names)) != len(names):
        duplicated = next(name for name in names if names.count(name) > 1)
        raise MLflowError(400, f"column '{shorten(duplicated)}' appears more than once")
    frame.columns = pd.Index(names)
    documents = [name for name in names if _holds_documents(frame[name])]
    plain = PandasCodec.encode_request(frame.drop(columns=documents)) if documents else None
    if plain is None:
        return PandasCodec.encode_request(frame)
    encoded = {tensor.name: tensor for tensor in plain.inputs}
    for name in documents:
        encoded[name] = JSONCodec.encode_input(name, [_document(value) for value in frame[name]])
    return InferenceRequest(
        parameters=Parameters(content_type=PandasCodec.ContentType), inputs=[encoded[name] for name in names]
    )


def _holds_documents(series: pd.Series) -> bool:
    if series.dtype.kind != "O" and not isinstance(series.dtype, pd.StringDtype):
        return False
    return any(isinstance(value, (list, dict)) for value in series) or bool(series.isna().any())


def _document(value: Any) -> Any:
    if isinstance(value, (list, dict, np.ndarray)):
        return value
    return None if pd.isna(value) else value


# Tensors


def _tensors_request(key: str, data: Any) -> InferenceRequest:
    """`inputs` or `instances`: a dict is named tensors (core's `dict`
    request); a list of records is columns, by name (`instances`, as MLflow
    turns them into a dict of columns) or a DataFrame (`inputs`, which MLflow
    hands the model as records); anything else is one tensor."""
    if isinstance(data, dict):
        return _named_request(key, data)
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        if key == INSTANCES:
            return _named_request(key, _columns(data))
        return frame_request(_records_frame(data))
    tensor = _tensor(UNNAMED, data)
    return InferenceRequest(inputs=[tensor], parameters=Parameters(content_type=content_type_of(tensor)))


def _named_request(key: str, tensors: dict[str, Any]) -> InferenceRequest:
    if not tensors:
        raise MLflowError(400, f"'{key}' holds no tensors")
    return InferenceRequest(
        inputs=[_tensor(str(name), value) for name, value in tensors.items()],
        parameters=Parameters(content_type="dict"),
    )


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for name, value in row.items():
            columns.setdefault(name, []).append(value)
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise MLflowError(400, f"'{INSTANCES}': the records do not all have the same keys")
    return columns


def _tensor(name: str, value: Any) -> RequestInput:
    """A JSON value as one tensor: numbers and booleans as an array (`np`),
    strings as text (`str`), other lists (of records, of text, with nulls)
    as JSON documents, one per row (`json`)."""
    if value is None:
        raise MLflowError(400, f"tensor '{shorten(name)}' is null")
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value) and value:
        return StringCodec.encode_input(name, value)
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return JSONCodec.encode_input(name, value)
    try:
        array = np.asarray(value)
    except ValueError:  # nested lists of different lengths
        if isinstance(value, list):
            return JSONCodec.encode_input(name, value)
        raise
    if array.dtype.kind in "biuf":
        return NumpyCodec.encode_input(name, array)
    if isinstance(value, list):
        return JSONCodec.encode_input(name, value)
    raise MLflowError(400, f"tensor '{shorten(name)}': a {type(value).__name__} is not a tensor")
