"""The inference hot path as a plain ASGI app in front of FastAPI.

FastAPI's middleware stack, routing and Request objects cost more than the
whole OIP request handling does; `POST .../infer` skips them. The FastAPI
route for infer stays registered, so the OpenAPI document still shows it,
and both paths share the parsing and error handling below."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError

from ..dataplane import DataPlane
from ..errors import BadRequest, CoreError, InferenceError
from ..types import InferenceRequest, InferenceResponse
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


def parse_inference_request(body: bytes) -> InferenceRequest:
    # pydantic does not validate `data` per element.
    content = parse_json(body)
    try:
        return InferenceRequest.model_validate(content)
    except ValidationError as error:
        raise BadRequest(describe_request_error(error)) from None


def render_inference_response(response: InferenceResponse) -> tuple[bytes, dict[str, str] | None]:
    """The JSON body, and the headers the model set in `parameters.headers`
    (sent as HTTP headers, not in the body)."""
    headers = None
    parameters = response.parameters
    if parameters is not None and parameters.headers:
        headers, parameters.headers = parameters.headers, None
        if not parameters.model_dump(exclude_none=True):
            response.parameters = None
    return dumps(response), headers


# Framing headers stay the server's own, whatever a model asks for.
_RESERVED_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding", "connection"})


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
            payload = parse_inference_request(body)
            response = await self.dataplane.infer(payload, name, version, headers)
            content, model_headers = render_inference_response(response)
            status, extra_headers = 200, encode_model_headers(name, model_headers)
        except CoreError as error:
            status, content, extra_headers = error.status_code, dumps({"error": error.message}), []
        except Exception:
            logger.exception("unhandled error on POST %s", scope["path"])
            status, content, extra_headers = 500, dumps({"error": "internal server error"}), []
        raw_headers = [_JSON, (b"content-length", str(len(content)).encode()), *extra_headers]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})
