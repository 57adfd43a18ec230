"""The inference hot path as a plain ASGI app in front of FastAPI.

FastAPI's middleware stack, routing and Request objects cost more than the
whole OIP request handling does; `POST .../infer` skips them. The FastAPI
route for infer stays registered, so the OpenAPI document still shows it,
and both paths share the parsing and error handling below."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from pydantic import ValidationError

from ..dataplane import DataPlane
from ..errors import BadRequest, CoreError, InferenceError
from ..remote import RemoteModel
from ..types import InferenceRequest, InferenceResponse
from ..types.dataplane import parameters_dict
from ..types.limits import check_request
from .binary import (
    ALL_BINARY,
    INFERENCE_HEADER,
    BinaryOutputs,
    read_binary_inputs,
    render_binary,
    single_input_request,
    split_body,
    take_binary_outputs,
)
from .body import Receive, parse_json, read_body
from .errors import describe_request_error
from .responses import dumps

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_JSON = (b"content-type", b"application/json")
_OCTET_STREAM = (b"content-type", b"application/octet-stream")


def parse_inference_request(body: bytes | memoryview) -> InferenceRequest:
    # pydantic does not validate `data` per element.
    content = parse_json(body)
    try:
        payload = InferenceRequest.model_validate(content)
    except ValidationError as error:
        raise BadRequest(describe_request_error(error)) from None
    # Every shape, and the BYTES elements of the request, before any data is decoded.
    check_request(payload.inputs)
    return payload


def parse_framed_request(body: bytes, declared: str | None) -> tuple[InferenceRequest, BinaryOutputs | None]:
    """A JSON request, or one in the binary extension (`declared`: its
    Inference-Header-Content-Length, not "0"), and the outputs it asks for
    as raw bytes."""
    if declared is None:
        payload = parse_inference_request(body)
    else:
        header, raw = split_body(body, declared)
        payload = parse_inference_request(header)
        read_binary_inputs(payload, raw)
    return payload, take_binary_outputs(payload)


async def infer_body(
    dataplane: DataPlane, name: str, version: str | None, headers: Mapping[str, str], body: bytes
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Answer an infer request body: the response body and its headers.
    `headers` has lower-case names. The binary extension costs a plain JSON
    request one header lookup and a look at its parameters."""
    declared = headers.get(INFERENCE_HEADER)
    if declared == "0":
        metadata = await dataplane.model_metadata(name, version)
        payload = single_input_request(metadata, body)
        binary: BinaryOutputs | None = ALL_BINARY  # as Triton: a request without JSON cannot ask
    else:
        payload, binary = parse_framed_request(body, declared)
    response = await dataplane.infer(payload, name, version, headers)
    model_headers = encode_model_headers(name, take_model_headers(response))
    if binary is None:
        return dumps(response), [_JSON, *model_headers]
    content, json_length = render_binary(response, binary)
    if json_length is None:  # none of the outputs asked for in binary was returned
        return content, [_JSON, *model_headers]
    framing = [_OCTET_STREAM, (INFERENCE_HEADER.encode(), str(json_length).encode())]
    return content, framing + model_headers


async def respond_infer(
    dataplane: DataPlane, name: str, version: str | None, headers: Mapping[str, str], body: bytes
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """`infer_body`'s answer, or the error's: status, body and headers."""
    try:
        content, response_headers = await infer_body(dataplane, name, version, headers, body)
    except CoreError as error:
        return error_response(error)
    except Exception:
        logger.exception("unhandled error in an infer request to model '%s'", name)
        return 500, dumps({"error": "internal server error"}), [_JSON]
    return 200, content, response_headers


def error_response(error: CoreError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return error.status_code, dumps({"error": error.message}), [_JSON]


def take_model_headers(response: InferenceResponse) -> dict[str, str] | None:
    """The headers the model set in `parameters.headers`, taken out of the
    response: they are sent as HTTP headers, not in the body."""
    parameters = response.parameters
    if parameters is None or not parameters.headers:
        return None
    headers, parameters.headers = parameters.headers, None
    if not parameters_dict(parameters):
        response.parameters = None
    return headers


# Framing headers stay the server's own, whatever a model asks for.
_RESERVED_HEADERS = frozenset(
    {
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "content-encoding",
        INFERENCE_HEADER,
    }
)


def encode_model_headers(model: str, headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    try:
        return [
            (key.lower().encode("latin-1"), str(value).encode("latin-1"))
            for key, value in headers.items()
            if key.lower() not in _RESERVED_HEADERS
        ]
    except UnicodeEncodeError as error:
        raise InferenceError(
            f"model '{model}' set a response header that HTTP cannot carry: {error}"
        ) from None


class FastInferApp:
    def __init__(self, app: ASGIApp, dataplane: DataPlane, max_body_size: int) -> None:
        self.app = app
        self.dataplane = dataplane
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INFER_PATH.match(scope["path"])
            if match is not None:
                await self._infer(scope, receive, send, match.group(1), match.group(2))
                return
        await self.app(scope, receive, send)

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        try:
            body = await read_body(headers, receive, self.max_body_size)
            model = self.dataplane.model(name, version)
            if isinstance(model, RemoteModel):
                # The replica (a worker, a Ray replica) parses the body and writes the answer.
                status, content, response_headers = await model.infer_http(headers, body)
            else:
                status, content, response_headers = await respond_infer(
                    self.dataplane, name, version, headers, body
                )
        except CoreError as error:
            status, content, response_headers = error_response(error)
        raw_headers = [(b"content-length", str(len(content)).encode()), *response_headers]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})
