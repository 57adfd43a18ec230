"""The gRPC typed tensor contents and the payloads they must reject. (The raw
form is tested in test_raw_tensors.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import BadRequest
from core.grpc.generated import inference_pb2 as pb
from core.grpc.tensors import decode_contents
from core.types import Datatype


def test_typed_contents() -> None:
    contents = pb.InferTensorContents(fp32_contents=[1.5, 2.5])
    np.testing.assert_array_equal(decode_contents("t", Datatype.FP32, contents), [1.5, 2.5])
    assert decode_contents("t", Datatype.BYTES, pb.InferTensorContents(bytes_contents=[b"x"])) == [b"x"]
    with pytest.raises(BadRequest, match="must be sent in raw contents"):
        decode_contents("t", Datatype.FP16, contents)
    with pytest.raises(BadRequest, match="takes int_contents, got fp32_contents"):
        decode_contents("t", Datatype.INT16, contents)
