"""The raw tensor layout (gRPC raw contents, REST binary extension): every
datatype both ways, and the malformed payloads it must reject."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from core.errors import BadRequest, PayloadTooLarge
from core.types import NUMPY_DTYPES, Datatype, RequestInput, limits, to_ndarray
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


def test_bytes_of_one_length_are_split_in_bulk_with_their_nuls() -> None:
    elements = [b"\x00a\x00", b"bc\x00", b"\x00\x00\x00"]
    raw = b"".join(struct.pack("<I", 3) + item for item in elements)
    assert decode_raw("t", Datatype.BYTES, [3], raw) == elements
    assert decode_raw("t", Datatype.BYTES, [3], memoryview(raw)) == elements
    assert decode_raw("t", Datatype.BYTES, [4], struct.pack("<I", 0) * 4) == [b""] * 4
    assert decode_raw("t", Datatype.BYTES, [0], b"") == []
    # One length prefix that differs: element by element, same answer.
    mixed = raw[:-7] + struct.pack("<I", 2) + b"zz"
    assert decode_raw("t", Datatype.BYTES, [3], mixed) == [*elements[:2], b"zz"]
    with pytest.raises(BadRequest, match="has more"):
        decode_raw("t", Datatype.BYTES, [2], raw)


def test_bytes_element_limit_is_checked_from_the_shape() -> None:
    limits.configure(max_bytes_elements=10)
    try:
        with pytest.raises(PayloadTooLarge, match=r"11 BYTES elements.*limit of 10 \(max_bytes_elements\)"):
            decode_raw("t", Datatype.BYTES, [11], b"")  # refused before the data is looked at
        with pytest.raises(PayloadTooLarge, match="max_bytes_elements"):
            to_ndarray(RequestInput(name="t", shape=[11], datatype="BYTES", data=["a"]))
        assert decode_raw("t", Datatype.BYTES, [10], struct.pack("<I", 0) * 10) == [b""] * 10
        with pytest.raises(PayloadTooLarge):
            limits.check_request(
                [declared("a", "BYTES", [6]), declared("b", "FP32", [100]), declared("c", "BYTES", [5])]
            )
        limits.check_request(
            [declared("a", "BYTES", [5]), declared("b", "FP32", [100]), declared("c", "BYTES", [5])]
        )
    finally:
        limits.configure(max_bytes_elements=limits.DEFAULT_MAX_BYTES_ELEMENTS)


def test_more_than_64_dimensions_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="65 dimensions, more than the limit of 64"):
        decode_raw("t", Datatype.FP32, [1] * 65, bytes(4))
    with pytest.raises(BadRequest, match="limit of 64"):
        to_ndarray(RequestInput(name="t", shape=[1] * 65, datatype="FP32", data=[1.0]))
    assert decode_raw("t", Datatype.FP32, [1] * 64, bytes(4)).size == 1


def test_json_bytes_beyond_the_shape_are_not_converted() -> None:
    with pytest.raises(BadRequest, match="holds 2 elements but data has more"):
        to_ndarray(RequestInput(name="t", shape=[2], datatype="BYTES", data=["a"] * 1000))
    array = to_ndarray(RequestInput(name="t", shape=[2, 1], datatype="BYTES", data=[["é"], [b"\x00"]]))
    assert array.tolist() == [["é".encode()], [b"\x00"]]


def test_long_names_are_shortened_in_errors() -> None:
    with pytest.raises(BadRequest) as error:
        decode_raw("n" * 10_000, Datatype.FP32, [2], bytes(4))
    assert len(error.value.message) < 400 and "…" in error.value.message


def declared(name: str, datatype: str, shape: list[int]) -> RequestInput:
    return RequestInput(name=name, datatype=datatype, shape=shape, data=[])
