"""`infer_message`, gRPC's ModelInfer as bytes in and bytes out: the seam the
servicer (and a worker handed the request bytes) calls, without a server."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core import Model, ModelSettings, Settings
from core.codecs import NumpyCodec, NumpyRequestCodec
from core.dataplane import DataPlane
from core.errors import BadRequest, InferenceError, ModelNotFound
from core.grpc.generated import inference_pb2 as pb
from core.grpc.infer import infer_message
from core.registry import ModelRegistry
from core.types import InferenceRequest, InferenceResponse, Parameters


class Doubler(Model):
    """Doubles its input; echoes the `x-echo` header back as `x-reply`."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        doubled = NumpyRequestCodec.decode_request(payload) * 2
        headers = payload.parameters.headers if payload.parameters else None
        reply = {"x-reply": headers["x-echo"]} if headers and "x-echo" in headers else None
        if headers and "x-bad" in headers:
            reply = {"x-reply": "caf\u00e9"}
        return InferenceResponse(
            model_name=self.name,
            parameters=Parameters(headers=reply, flag=True) if reply else None,
            outputs=[NumpyCodec.encode_output("twice", doubled)],
        )


def request(values: list[int], model: str = "doubler") -> bytes:
    message = pb.ModelInferRequest(model_name=model, id="r-1")
    message.inputs.add(name="x", datatype="INT32", shape=[len(values)])
    message.raw_input_contents.append(np.array(values, dtype="<i4").tobytes())
    return message.SerializeToString()


def infer(run: Any, data: bytes, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
    async def main() -> tuple[bytes, tuple[tuple[str, str], ...]]:
        dataplane = DataPlane(Settings(model_repository_root="/nonexistent"), ModelRegistry())
        await dataplane.add_model(Doubler(ModelSettings(name="doubler")))
        return await infer_message(dataplane, data, headers or {})

    body, metadata = run(main())
    return pb.ModelInferResponse.FromString(body), metadata


def test_request_bytes_give_response_bytes(run: Any) -> None:
    response, metadata = infer(run, request([1, 2, 3]))
    assert (response.model_name, response.id) == ("doubler", "r-1")
    output = response.outputs[0]
    assert (output.name, output.datatype, list(output.shape)) == ("twice", "INT32", [3])
    assert output.parameters["content_type"].string_param == "np"
    assert np.frombuffer(response.raw_output_contents[0], "<i4").tolist() == [2, 4, 6]
    assert metadata == ()


def test_headers_reach_the_model_and_come_back_as_metadata(run: Any) -> None:
    response, metadata = infer(run, request([1]), {"x-echo": "hi"})
    assert metadata == (("x-reply", "hi"),)
    # Headers travel as metadata, the other response parameters in the message.
    assert set(response.parameters) == {"flag"}
    with pytest.raises(InferenceError, match="x-reply"):
        infer(run, request([1]), {"x-bad": "1"})


def test_errors_are_core_errors(run: Any) -> None:
    with pytest.raises(BadRequest, match="malformed ModelInferRequest"):
        infer(run, b"\xff\xff\xff")
    with pytest.raises(ModelNotFound):
        infer(run, request([1], model="ghost"))
