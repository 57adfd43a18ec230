"""What the four clients (REST and gRPC, sync and async) share: turning the
forms `infer` accepts into one InferRequest, the headers of a call, and the
sentinel for "the client's own timeout"."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
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


async def as_async_iterator(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    """The items of an iterable or async iterable (the requests of an async stream)."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def call_headers(
    defaults: Mapping[str, str], headers: Mapping[str, str] | None, request_id: str | None = None
) -> dict[str, str]:
    """The client's headers, then the call's, and an `x-request-id` (the
    request's id, or a new one) unless one of them set it. Names are
    lowercased: gRPC metadata keys must be."""
    # os.urandom(16).hex(): a uuid4's randomness, without building a UUID object.
    if not defaults and not headers:
        return {REQUEST_ID_HEADER: request_id or os.urandom(16).hex()}
    merged = {name.lower(): value for name, value in defaults.items()}
    if headers:
        merged.update((name.lower(), value) for name, value in headers.items())
    if REQUEST_ID_HEADER not in merged:
        merged[REQUEST_ID_HEADER] = request_id or os.urandom(16).hex()
    return merged


class ClientCalls:
    """The calls of the four clients, written once. A transport describes
    each call (`_describe`: what to send, whether it is safe to repeat, how
    to read the answer) and makes it (`_run`): the result itself in the sync
    clients, an awaitable of it in the async ones."""

    def _describe(
        self, operation: str, headers: Mapping[str, str] | None, timeout: Any, **arguments: Any
    ) -> Any:
        raise NotImplementedError

    def _run(self, call: Any) -> Any:
        raise NotImplementedError

    def _make(self, operation: str, headers: Mapping[str, str] | None, timeout: Any, **arguments: Any) -> Any:
        return self._run(self._describe(operation, headers, timeout, **arguments))

    def _infer_request(
        self,
        model_name: str,
        inputs: Any,
        outputs: Sequence[RequestedOutput | str] | None = None,
        model_version: str | None = None,
        request_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        binary_output: bool | None = None,
    ) -> InferRequest:
        return as_infer_request(
            model_name,
            inputs,
            outputs=outputs,
            model_version=model_version,
            request_id=request_id,
            parameters=self._infer_parameters(inputs, parameters, binary_output),
            binary_data=self._binary_inputs,
        )

    # Whether numpy inputs go as raw bytes (gRPC: always; REST: the client's `binary`).
    _binary_inputs = True

    def _infer_parameters(
        self, inputs: Any, parameters: Mapping[str, Any] | None, binary_output: bool | None
    ) -> Mapping[str, Any] | None:
        """The request parameters the transport sends: the caller's, as given."""
        return parameters

    # Health: judged by the status of the answer alone (MLServer answers an
    # empty 200, KServe and Triton a body); a "no" is an answer, not a retry.

    def is_server_live(
        self, *, headers: Mapping[str, str] | None = None, timeout: Any = USE_CLIENT_DEFAULT
    ) -> Any:
        return self._make("server_live", headers, timeout)

    def is_server_ready(
        self, *, headers: Mapping[str, str] | None = None, timeout: Any = USE_CLIENT_DEFAULT
    ) -> Any:
        return self._make("server_ready", headers, timeout)

    def is_model_ready(
        self,
        model_name: str,
        model_version: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self._make("model_ready", headers, timeout, model_name=model_name, model_version=model_version)

    # Metadata: core.types.MetadataServerResponse, MetadataModelResponse

    def server_metadata(
        self, *, headers: Mapping[str, str] | None = None, timeout: Any = USE_CLIENT_DEFAULT
    ) -> Any:
        return self._make("server_metadata", headers, timeout)

    def model_metadata(
        self,
        model_name: str,
        model_version: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self._make(
            "model_metadata", headers, timeout, model_name=model_name, model_version=model_version
        )

    # Inference

    def infer(
        self,
        model_name: str,
        inputs: Any,
        *,
        outputs: Sequence[RequestedOutput | str] | None = None,
        model_version: str | None = None,
        request_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
        binary_output: bool | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Run `inputs` (the forms `as_infer_request` takes) through
        `model_name`: an InferResponse. `binary_output` (REST) asks for raw
        outputs or JSON ones, whatever the client's default; gRPC servers
        answer raw. `idempotent`: the call may be repeated when its answer
        is lost (see core.client.retry)."""
        request = self._infer_request(
            model_name, inputs, outputs, model_version, request_id, parameters, binary_output
        )
        return self._make("infer", headers, timeout, request=request, idempotent=idempotent)

    # Model repository: index (a list of core.types.RepositoryIndexResponseItem), load, unload

    def repository_index(
        self,
        ready: bool = False,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self._make("repository_index", headers, timeout, ready=ready)

    def load_model(
        self, model_name: str, *, headers: Mapping[str, str] | None = None, timeout: Any = USE_CLIENT_DEFAULT
    ) -> Any:
        return self._make("load_model", headers, timeout, model_name=model_name)

    def unload_model(
        self, model_name: str, *, headers: Mapping[str, str] | None = None, timeout: Any = USE_CLIENT_DEFAULT
    ) -> Any:
        return self._make("unload_model", headers, timeout, model_name=model_name)

    # Triton's extensions: the model configuration and statistics, as dicts

    def model_config(
        self,
        model_name: str,
        model_version: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self._make(
            "model_config", headers, timeout, model_name=model_name, model_version=model_version
        )

    def model_statistics(
        self,
        model_name: str | None = None,
        model_version: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self._make(
            "model_statistics", headers, timeout, model_name=model_name, model_version=model_version
        )
