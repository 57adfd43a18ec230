"""Reading request bodies within the configured size limit, and parsing JSON ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson

from ..errors import BadRequest, PayloadTooLarge

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    """The whole body from an ASGI `receive`, or 413 as soon as it is known to
    exceed `limit` bytes: from Content-Length when given, else while the
    chunks arrive. `headers` has lower-case names."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"invalid Content-Length header: {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json(body: bytes) -> Any:
    # orjson: on large tensors it builds the lists faster than pydantic's own parser.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
