"""Reading request bodies within the configured size limit, decompressing
gzip and deflate bodies (the limit holds for the decompressed size too), and
parsing JSON ones."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    """The whole body from an ASGI `receive`, or 413 as soon as it is known to
    exceed `limit` bytes: from Content-Length when given, else while the
    chunks arrive. `headers` has lower-case names."""
    body = await _receive(headers, receive, limit)
    encoding = headers.get("content-encoding")
    return body if encoding is None else decode_content(encoding, body, limit)


async def _receive(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
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


def parse_json(body: bytes | memoryview) -> Any:
    # orjson: on large tensors it builds the lists faster than pydantic's own parser.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None


# Window bits for zlib: gzip framing, and zlib framing (what HTTP calls deflate).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decode_content(encoding: str, body: bytes, limit: int) -> bytes:
    """The body decoded per its Content-Encoding, 413 as soon as it grows
    past `limit`: a small compressed body can expand a thousandfold."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return body
    wbits = _WBITS.get(name)
    if wbits is None:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported (gzip, deflate or identity)"
        )
    chunks: list[bytes] = []
    produced = 0
    data = body
    try:
        while True:  # gzip bodies may hold several members, one after the other
            inflater = zlib.decompressobj(wbits)
            while data:
                chunk = inflater.decompress(data, limit - produced + 1)
                produced += len(chunk)
                if produced > limit:
                    raise PayloadTooLarge(
                        f"request body decompresses to more than the limit of {limit} bytes"
                    )
                chunks.append(chunk)
                data = inflater.unconsumed_tail
            if not inflater.eof:
                raise BadRequest(f"request body is truncated {name} data")
            data = inflater.unused_data
            if not data:
                return b"".join(chunks)
    except zlib.error as error:
        raise BadRequest(f"request body is not valid {name} data: {error}") from None
