"""Requests merged into one along their first axis, and the model's answer
split back into one response per request.

Requests merge only when they have the same batch key: the same inputs in
the same order (name, datatype, every dimension but the first, content type,
names of custom parameters), the same request content type and custom
parameter names, and the same requested outputs with the same parameters.
Everything else is batched separately. Parameters: see `.parameters`."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import orjson

from ..errors import BadRequest, InferenceError
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    to_ndarray,
)
from .parameters import merge_parameters, parameters_key, split_parameters


def batch_key(payload: InferenceRequest, by_value: bool = False) -> Hashable | None:
    """What requests must share to be merged; None for a request that cannot
    be merged with any: one without inputs, with an input of no dimensions,
    or with inputs that disagree on the first dimension (its rows). With
    `by_value`, the request's custom parameters must be equal, values included."""
    if not payload.inputs:
        return None
    rows = payload.inputs[0].shape[0] if payload.inputs[0].shape else None
    inputs = []
    for tensor in payload.inputs:
        shape = tensor.shape
        if not shape or shape[0] != rows:
            return None
        inputs.append((tensor.name, tensor.datatype, tuple(shape[1:]), parameters_key(tensor.parameters)))
    outputs = None if payload.outputs is None else tuple(_output_key(output) for output in payload.outputs)
    return (parameters_key(payload.parameters, by_value), tuple(inputs), outputs)


def _output_key(output: RequestOutput) -> tuple[str, bytes]:
    # Output parameters (a `classification` count, say) change the answer:
    # they must be equal, values included.
    parameters = output.parameters.model_dump(exclude_none=True) if output.parameters else {}
    return (output.name, orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS, default=repr))


def rows(payload: InferenceRequest) -> int:
    """The rows of a request that has a batch key."""
    return payload.inputs[0].shape[0]


def merge_requests(payloads: list[InferenceRequest], by_value: bool = False) -> InferenceRequest:
    """One request holding the rows of every request of `payloads` (which
    share a batch key, made with the same `by_value`), in order. Its tensors
    hold numpy arrays (lists of bytes for BYTES), as raw tensors do; it has no id."""
    first = payloads[0]
    inputs = []
    for index, tensor in enumerate(first.inputs):
        tensors = [payload.inputs[index] for payload in payloads]
        arrays = [to_ndarray(each) for each in tensors]
        merged = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        inputs.append(
            RequestInput.model_construct(
                name=tensor.name,
                shape=list(merged.shape),
                datatype=tensor.datatype,
                parameters=merge_parameters([each.parameters for each in tensors]),
                data=_flat(tensor.datatype, merged),
            )
        )
    return InferenceRequest.model_construct(
        id=None,
        parameters=merge_parameters([payload.parameters for payload in payloads], by_value),
        inputs=inputs,
        outputs=first.outputs,
    )


def split_response(
    model: str, response: InferenceResponse, payloads: list[InferenceRequest]
) -> list[InferenceResponse]:
    """The answer to each request of `payloads` (merged in this order): its
    own rows of every output, its parameters, its id. An output without the
    batch's rows as its first dimension cannot be split: an InferenceError
    naming the model."""
    counts = [rows(payload) for payload in payloads]
    total = sum(counts)
    outputs: list[list[ResponseOutput]] = [[] for _ in payloads]
    for output in response.outputs:
        array = _output_array(model, output)
        if array.ndim == 0 or array.shape[0] != total:
            raise InferenceError(
                f"model '{model}' returned output '{output.name}' of shape {output.shape} for a "
                f"batch of {len(payloads)} requests with {total} rows in all: with adaptive "
                f"batching every output needs the batch's rows as its first dimension"
            )
        parameters = split_parameters(output.parameters, len(payloads))
        start = 0
        for index, count in enumerate(counts):
            part = array[start : start + count]
            start += count
            outputs[index].append(
                ResponseOutput.model_construct(
                    name=output.name,
                    shape=list(part.shape),
                    datatype=output.datatype,
                    parameters=parameters[index],
                    data=_flat(output.datatype, part),
                )
            )
    response_parameters = split_parameters(response.parameters, len(payloads))
    return [
        InferenceResponse.model_construct(
            model_name=response.model_name,
            model_version=response.model_version,
            id=payload.id,
            parameters=parameters,
            outputs=own,
        )
        for payload, parameters, own in zip(payloads, response_parameters, outputs, strict=True)
    ]


def _output_array(model: str, output: ResponseOutput) -> np.ndarray:
    try:
        return to_ndarray(output)
    except BadRequest as error:  # the model's data, not the client's
        raise InferenceError(f"model '{model}' returned output '{output.name}': {error.message}") from None


def _flat(datatype: Datatype, array: np.ndarray) -> Any:
    if datatype == Datatype.BYTES:
        return array.ravel().tolist()
    return np.ascontiguousarray(array).reshape(-1)
