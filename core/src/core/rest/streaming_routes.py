"""Streaming inference over REST: MLServer's `infer_stream` and Triton's
`generate_stream` as server-sent events, and `generate`.

Errors before the first response are ordinary `{"error"}` answers with their
status; once the stream has started, an error is sent as one last event
`data: {"error": "..."}` and the stream ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from ..dataplane import DataPlane
from ..errors import CoreError
from ..types import InferenceRequest, InferenceResponse
from .binary import INFERENCE_HEADER
from .body import read_body
from .dataplane_routes import ERROR_RESPONSES, INFER_BODY, versioned_route
from .fast_infer import encode_model_headers, parse_framed_request, take_model_headers
from .generate import generate_request, generate_response, merge_generate_responses
from .responses import JSONResponse, dumps, response_content

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"

_GENERATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["text_input"],
                    "properties": {
                        "id": {"type": "string"},
                        "text_input": {"type": "string"},
                        "parameters": {"type": "object"},
                    },
                }
            }
        },
    }
}


def event(content: Any) -> bytes:
    """One server-sent event carrying `content` as JSON (one line: JSON
    escapes newlines inside strings)."""
    return b"data: " + dumps(content) + b"\n\n"


async def open_stream(
    dataplane: DataPlane,
    request: Request,
    name: str,
    version: str | None,
    payload: InferenceRequest,
) -> tuple[InferenceResponse | None, AsyncIterator[InferenceResponse]]:
    """The first response (None when the model sent none) and the rest. The
    first one's errors raise here, before any byte of the answer is sent."""
    stream = dataplane.infer_stream(payload, name, version, request.headers)
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        return None, stream
    return first, stream


async def sse_response(
    dataplane: DataPlane,
    request: Request,
    name: str,
    version: str | None,
    payload: InferenceRequest,
    render: Callable[[InferenceResponse], Any],
) -> Response:
    """Server-sent events, one per response, each `render`ed as JSON. The
    headers a model sets on its first response are the HTTP headers."""
    first, rest = await open_stream(dataplane, request, name, version, payload)
    headers = encode_model_headers(name, take_model_headers(first)) if first is not None else []
    response = StreamingResponse(_events(first, rest, render), media_type=EVENT_STREAM)
    response.raw_headers.extend(headers)
    return response


async def _events(
    first: InferenceResponse | None,
    rest: AsyncIterator[InferenceResponse],
    render: Callable[[InferenceResponse], Any],
) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield event(render(first))
        async for response in rest:
            take_model_headers(response)  # too late for HTTP headers
            yield event(render(response))
    except CoreError as error:
        yield event({"error": error.message})
    except Exception:
        logger.exception("unhandled error in a response stream")
        yield event({"error": "internal server error"})


def streaming_router(dataplane: DataPlane, max_body_size: int) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES)

    async def infer_stream(request: Request, name: str, version: str | None = None) -> Response:
        body = await read_body(request.headers, request.receive, max_body_size)
        # Inputs may come in the binary extension; events carry outputs as JSON.
        payload, _ = parse_framed_request(body, request.headers.get(INFERENCE_HEADER))
        return await sse_response(dataplane, request, name, version, payload, response_content)

    async def generate_stream(request: Request, name: str, version: str | None = None) -> Response:
        body = await read_body(request.headers, request.receive, max_body_size)
        payload = generate_request(body)
        return await sse_response(dataplane, request, name, version, payload, generate_response)

    async def generate(request: Request, name: str, version: str | None = None) -> JSONResponse:
        body = await read_body(request.headers, request.receive, max_body_size)
        payload = generate_request(body)
        stream = dataplane.infer_stream(payload, name, version, request.headers)
        responses: list[dict[str, Any]] = []
        headers: list[tuple[bytes, bytes]] = []
        async for response in stream:
            model_headers = take_model_headers(response)
            if not responses:
                headers = encode_model_headers(name, model_headers)
            responses.append(generate_response(response))
        answer = JSONResponse(merge_generate_responses(responses))
        answer.raw_headers.extend(headers)
        return answer

    streaming = {"tags": ["inference"], "response_class": StreamingResponse}
    versioned_route(router, "/infer_stream", "POST", infer_stream, **streaming, openapi_extra=INFER_BODY)
    versioned_route(
        router, "/generate_stream", "POST", generate_stream, **streaming, openapi_extra=_GENERATE_BODY
    )
    versioned_route(router, "/generate", "POST", generate, tags=["inference"], openapi_extra=_GENERATE_BODY)
    return router
