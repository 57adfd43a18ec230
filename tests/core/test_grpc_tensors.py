"""The gRPC tensor codecs: raw bytes both ways for every datatype, typed
contents, and the malformed payloads they must reject."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from core.errors import BadRequest
from core.grpc.generated import inference_pb2 as pb
from core.grpc.tensors import decode_contents, decode_raw, encode_raw
from core.types import NUMPY_DTYPES, Datatype

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
        (b"\x00\x00\x00\x00" * 3, "have more"),
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


def test_typed_contents() -> None:
    contents = pb.InferTensorContents(fp32_contents=[1.5, 2.5])
    np.testing.assert_array_equal(decode_contents("t", Datatype.FP32, contents), [1.5, 2.5])
    assert decode_contents("t", Datatype.BYTES, pb.InferTensorContents(bytes_contents=[b"x"])) == [b"x"]
    with pytest.raises(BadRequest, match="must be sent in raw contents"):
        decode_contents("t", Datatype.FP16, contents)
    with pytest.raises(BadRequest, match="takes int_contents, got fp32_contents"):
        decode_contents("t", Datatype.INT16, contents)
