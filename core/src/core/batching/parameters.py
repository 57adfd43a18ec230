"""Request and tensor parameters through a batch, as MLServer documents it.

Merging (requests into one): `content_type` is the same in every request of
a batch (the batch key sees to it) and stays as it is. Every other custom
parameter becomes a list with one value per request, in batch order. The
transport `headers` are the ones every request sent with the same value.

Splitting (the model's answer back): a list-valued parameter gives its i-th
value to the i-th request (none when the list is shorter); any other value,
`content_type` and `headers` included, goes to every request."""

from __future__ import annotations

from typing import Any

from ..types import Parameters


def parameters_key(parameters: Parameters | None) -> tuple[str | None, tuple[str, ...]]:
    """What merged parameters must share: the content type and the names of
    the custom parameters (whose values become lists)."""
    if parameters is None:
        return (None, ())
    extra = parameters.__pydantic_extra__
    return (parameters.content_type, tuple(sorted(extra)) if extra else ())


def merge_parameters(all_parameters: list[Parameters | None]) -> Parameters | None:
    present = [parameters for parameters in all_parameters if parameters is not None]
    if not present:
        return None
    fields: dict[str, Any] = {}
    if present[0].content_type is not None:
        fields["content_type"] = present[0].content_type
    headers = _common_headers(all_parameters)
    if headers:
        fields["headers"] = headers
    for name in present[0].__pydantic_extra__ or ():
        fields[name] = [_extra(parameters)[name] for parameters in all_parameters]
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
