"""Decoding Content-Encoding of request bodies within the size limit."""

from __future__ import annotations

import gzip
import zlib

import pytest

from core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from core.rest.body import decode_content


def test_identity_and_unknown_encodings() -> None:
    assert decode_content("identity", b"abc", 10) == b"abc"
    with pytest.raises(UnsupportedMediaType, match="'br' is not supported"):
        decode_content("br", b"abc", 10)


def test_gzip_and_deflate_up_to_the_limit() -> None:
    data = b"x" * 100
    assert decode_content("gzip", gzip.compress(data), 100) == data
    assert decode_content(" Deflate ", zlib.compress(data), 100) == data
    with pytest.raises(PayloadTooLarge, match="more than the limit of 99 bytes"):
        decode_content("gzip", gzip.compress(data), 99)


def test_gzip_members_are_concatenated() -> None:
    body = gzip.compress(b"ab") + gzip.compress(b"cd")
    assert decode_content("gzip", body, 4) == b"abcd"
    with pytest.raises(PayloadTooLarge):
        decode_content("gzip", body, 3)


def test_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    with pytest.raises(PayloadTooLarge):
        decode_content("gzip", bomb, 1000)


@pytest.mark.parametrize(
    ("encoding", "body", "problem"),
    [
        ("gzip", b"plain", "not valid gzip data"),
        ("gzip", gzip.compress(b"abcdef")[:-4], "truncated gzip data"),
        ("gzip", b"", "truncated gzip data"),
        ("deflate", zlib.compress(b"ab") + b"junk", "not valid deflate data"),
    ],
)
def test_malformed_bodies(encoding: str, body: bytes, problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        decode_content(encoding, body, 1000)
