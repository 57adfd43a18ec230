"""Request and tensor parameters through a batch, as MLServer documents it.

Merging (requests into one): `content_type` is the same in every request of
a batch (the batch key sees to it) and stays as it is. Every other custom
parameter becomes a list with one value per request, in batch order; for a
model that batches by parameter values (`Model.batch_by_parameter_values`:
requests merge only when their custom parameters are equal), it stays as it is. The
transport `headers` are the ones every request sent with the same value.

Splitting (the model's answer back): a list-valued parameter gives its i-th
value to the i-th request (none when the list is shorter); any other value,
`content_type` and `headers` included, goes to every request."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import orjson

from ..types import Parameters


def parameters_key(parameters: Parameters | None, by_value: bool = False) -> Hashable:
    """What merged parameters must share: the content type and the names of
    the custom parameters (whose values become lists); with `by_value`, their
    values too (and they stay as they are)."""
    if parameters is None:
        return (None, ())
    extra = parameters.__pydantic_extra__
    if by_value and extra:
        return (parameters.content_type, orjson.dumps(extra, option=orjson.OPT_SORT_KEYS, default=repr))
    return (parameters.content_type, tuple(sorted(extra)) if extra else ())


def merge_parameters(all_parameters: list[Parameters | None], by_value: bool = False) -> Parameters | None:
    """The parameters of a merged request. With `by_value` the requests'
    custom parameters are equal (their batch key says so): kept as they are."""
    present = [parameters for parameters in all_parameters if parameters is not None]
    if not present:
        return None
    fields: dict[str, Any] = {}
    if present[0].content_type is not None:
        fields["content_type"] = present[0].content_type
    headers = _common_headers(all_parameters)
    if headers:
        fields["headers"] = headers
    for name, value in (present[0].__pydantic_extra__ or {}).items():
        fields[name] = value if by_value else [_extra(parameters)[name] for parameters in all_parameters]
    return Parameters.model_validate(fields) if fields else None


def split_parameters(parameters: Parameters | None, count: int) -> list[Parameters | None]:
    if parameters is None:
        return [None] * count
    shared: dict[str, Any] = {}
    if parameters.content_type is not None:
        shared["content_type"] = parameters.content_type
    extra = parameters.__pydantic_extra__ or {}
    split: list[Parameters | None] = []
    for index in range(count):
        fields = dict(shared)
        if parameters.headers is not None:
            fields["headers"] = dict(parameters.headers)
        for name, value in extra.items():
            if not isinstance(value, list):
                fields[name] = value
            elif index < len(value):
                fields[name] = value[index]
        split.append(Parameters.model_validate(fields) if fields else None)
    return split


def _extra(parameters: Parameters | None) -> dict[str, Any]:
    # Requests of one batch have the same custom parameter names, so a request
    # without parameters has none of them: its batch has none either.
    return (parameters.__pydantic_extra__ or {}) if parameters is not None else {}


def _common_headers(all_parameters: list[Parameters | None]) -> dict[str, str]:
    common: dict[str, str] | None = None
    for parameters in all_parameters:
        headers = (parameters.headers if parameters is not None else None) or {}
        if common is None:
            common = dict(headers)
        else:
            common = {key: value for key, value in common.items() if headers.get(key) == value}
        if not common:
            return {}
    return common or {}
