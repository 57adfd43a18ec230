"""What the four clients (REST and gRPC, sync and async) share: turning the
forms `infer` accepts into one InferRequest, the headers of a call, and the
sentinel for "the client's own timeout"."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..types import InferenceRequest
from .types import InferInput, InferRequest, RequestedOutput

REQUEST_ID_HEADER = "x-request-id"


class _UseClientDefault:
    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Any = _UseClientDefault()

Timeout = float | None


def resolve_timeout(timeout: Any, default: Timeout) -> Timeout:
    return default if timeout is USE_CLIENT_DEFAULT else timeout


def as_infer_request(
    model_name: str,
    inputs: Any,
    *,
    outputs: Sequence[RequestedOutput | str] | None,
    model_version: str | None,
    request_id: str | None,
    parameters: Mapping[str, Any] | None,
    binary_data: bool,
) -> InferRequest:
    """`inputs` as a request to `model_name`: a list of InferInput, an
    InferRequest, a core InferenceRequest, a numpy array (one input,
    "input-0"), a dict of arrays (one input each), or a pandas DataFrame
    (one input per column, content type "pd"). Arguments given here
    override the request's own."""
    requested = [RequestedOutput(o) if isinstance(o, str) else o for o in outputs] if outputs else None
    if isinstance(inputs, InferRequest):
        request = inputs
        if request.model_name != model_name or requested or request_id or parameters or model_version:
            request = InferRequest(
                model_name,
                request.inputs,
                request_id=request_id or request.id,
                parameters={**(request.parameters or {}), **(parameters or {})} or None,
                request_outputs=requested or request.request_outputs,
                model_version=model_version or request.model_version,
            )
        return request
    if isinstance(inputs, InferenceRequest):
        request = InferRequest.from_inference_request(inputs, model_name)
        return as_infer_request(
            model_name,
            request,
            outputs=outputs,
            model_version=model_version,
            request_id=request_id,
            parameters=parameters,
            binary_data=binary_data,
        )
    if isinstance(inputs, np.ndarray):
        tensors = [InferInput.from_numpy("input-0", inputs, binary_data=binary_data)]
    elif isinstance(inputs, Mapping):
        tensors = [
            InferInput.from_numpy(name, np.asarray(array), binary_data=binary_data)
            for name, array in inputs.items()
        ]
    elif type(inputs).__name__ == "DataFrame":
        encoded = InferRequest.encode(model_name, inputs, binary_data=binary_data)
        return as_infer_request(
            model_name,
            encoded,
            outputs=outputs,
            model_version=model_version,
            request_id=request_id,
            parameters=parameters,
            binary_data=binary_data,
        )
    else:
        tensors = list(inputs)
        if not all(isinstance(tensor, InferInput) for tensor in tensors):
            raise TypeError(
                "infer takes a list of InferInput, an InferRequest, an InferenceRequest, "
                f"a numpy array, a dict of arrays or a pandas DataFrame, not {type(inputs).__name__}"
            )
    return InferRequest(
        model_name,
        tensors,
        request_id=request_id,
        parameters=dict(parameters) if parameters else None,
        request_outputs=requested,
        model_version=model_version,
    )


def call_headers(
    defaults: Mapping[str, str], headers: Mapping[str, str] | None, request_id: str | None = None
) -> dict[str, str]:
    """The client's headers, then the call's, and an `x-request-id` (the
    request's id, or a new one) unless one of them set it. Names are
    lowercased: gRPC metadata keys must be."""
    merged = {name.lower(): value for name, value in defaults.items()}
    if headers:
        merged.update((name.lower(), value) for name, value in headers.items())
    if REQUEST_ID_HEADER not in merged:
        merged[REQUEST_ID_HEADER] = request_id or uuid.uuid4().hex
    return merged
