"""Reading request bodies within the configured size limit, decompressing
gzip and deflate bodies (the limit holds for the decompressed size too), and
parsing JSON ones."""

from __future__ import annotations

import re
import zlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import numpy as np
import orjson

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, shorten
from ..memory import release_after

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    """The whole body from an ASGI `receive`, or 413 as soon as it is known to
    exceed `limit` bytes: from Content-Length when given, else while the
    chunks arrive. `headers` has lower-case names."""
    body = await _receive(headers, receive, limit)
    release_after(len(body))
    encoding = headers.get("content-encoding")
    return body if encoding is None else decode_content(encoding, body, limit)


async def _receive(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"invalid Content-Length header: {shorten(repr(declared))}")
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


# The deepest nesting of arrays and objects a JSON body may have: a tensor of
# numpy's 64 dimensions sent as nested lists is 67 levels deep in a request,
# and 100 stays far below the recursion that pickling a request for a worker
# (or serialising it: orjson stops at 254) needs. Deeper bodies are a 400.
MAX_JSON_DEPTH = 100


def parse_json(body: bytes | memoryview) -> Any:
    """The parsed body; 400 for malformed JSON and for JSON nested deeper
    than MAX_JSON_DEPTH (every JSON route parses its body here)."""
    # orjson: on large tensors it builds the lists faster than pydantic's own parser.
    try:
        content = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
    check_json_depth(body if isinstance(body, bytes) else bytes(body))
    return content


# Brackets as steps up (1) and down (2), everything else dropped; JSON strings.
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\x02\x02")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_CHUNK = 1 << 24


def check_json_depth(text: bytes) -> None:
    """400 when valid JSON `text` nests arrays and objects deeper than
    MAX_JSON_DEPTH. Read from the bytes in C and numpy (a walk of the parsed
    lists would cost as much as parsing them); brackets inside strings are
    left out only when counting them in puts the body over the limit."""
    if text.count(b"[") + text.count(b"{") <= MAX_JSON_DEPTH:
        return  # too few brackets to nest that deep: most requests stop here
    if _nesting_depth(text) > MAX_JSON_DEPTH and _nesting_depth(_JSON_STRING.sub(b"", text)) > MAX_JSON_DEPTH:
        raise BadRequest(f"JSON body is nested more than {MAX_JSON_DEPTH} levels deep (the limit)")


def _nesting_depth(text: bytes) -> int:
    brackets = text.translate(_BRACKET_STEPS, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):  # in chunks: 4 bytes of int32 per bracket
        codes = np.frombuffer(
            brackets, dtype=np.uint8, count=min(_CHUNK, len(brackets) - start), offset=start
        )
        running = np.cumsum(3 - 2 * codes.astype(np.int32)) + depth
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
    return deepest


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
            f"Content-Encoding {shorten(repr(encoding))} is not supported (gzip, deflate or identity)"
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
