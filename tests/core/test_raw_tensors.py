"""The raw tensor layout (gRPC raw contents, REST binary extension): every
datatype both ways, and the malformed payloads it must reject."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from core.errors import BadRequest
from core.types import NUMPY_DTYPES, Datatype
from core.types.raw import decode_raw, encode_raw, itemsize

NUMERIC = [d for d in Datatype if d not in (Datatype.BYTES, Datatype.BF16)]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_raw_round_trip(datatype: Datatype) -> None:
    array = np.arange(6).reshape(2, 3).astype(NUMPY_DTYPES[datatype])
    raw = encode_raw(datatype, array)
    assert raw == array.astype(NUMPY_DTYPES[datatype].newbyteorder("<")).tobytes()
    decoded = decode_raw("t", datatype, [2, 3], raw)
    np.testing.assert_array_equal(decoded.reshape(2, 3), array)
    assert decoded.flags.writeable


def test_bool_is_one_byte() -> None:
    assert encode_raw(Datatype.BOOL, np.array([True, False, True])) == b"\x01\x00\x01"


def test_bf16_is_the_high_half_of_float32() -> None:
    values = np.array([1.0, -2.5, 0.15625], dtype=np.float32)  # exact in bfloat16
    raw = encode_raw(Datatype.BF16, values)
    assert raw == b"".join(struct.pack("<f", v)[2:] for v in values)
    np.testing.assert_array_equal(decode_raw("t", Datatype.BF16, [3], raw), values)


def test_bytes_have_length_prefixes() -> None:
    raw = encode_raw(Datatype.BYTES, np.array([b"ab", b"", "\u00e9"], dtype=object))
    assert raw == b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x02\x00\x00\x00\xc3\xa9"
    assert decode_raw("t", Datatype.BYTES, [3], raw) == [b"ab", b"", b"\xc3\xa9"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x02\x00", "inside a length prefix"),
        (b"\x09\x00\x00\x00ab", "overruns"),
        (b"\x01\x00\x00\x00a", "shape holds 2 elements"),
        (b"\x00\x00\x00\x00" * 3, "has more"),
    ],
)
def test_malformed_bytes_are_rejected(raw: bytes, problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        decode_raw("t", Datatype.BYTES, [2], raw)


def test_wrong_raw_size_and_negative_shape_are_rejected() -> None:
    with pytest.raises(BadRequest, match="needs 16 bytes"):
        decode_raw("t", Datatype.FP32, [2, 2], b"\x00" * 12)
    with pytest.raises(BadRequest, match="negative"):
        decode_raw("t", Datatype.FP32, [-1, 2], b"")


def test_itemsize() -> None:
    assert itemsize(Datatype.BOOL) == 1
    assert itemsize(Datatype.FP16) == 2
    assert itemsize(Datatype.BF16) == 2
    assert itemsize(Datatype.UINT64) == 8
    assert itemsize(Datatype.BYTES) is None


def test_memoryview_input() -> None:
    body = memoryview(b"xx" + encode_raw(Datatype.BYTES, np.array([b"\xff\x00"], dtype=object)))
    assert decode_raw("t", Datatype.BYTES, [1], body[2:]) == [b"\xff\x00"]
    assert decode_raw("t", Datatype.INT16, [1], memoryview(b"\x01\x02")).tolist() == [0x0201]
