"""The `hf` codecs: structured values, numpy scalars included, as BYTES
tensors of JSON documents; registered through the plugin's hook, so that
`decode_args` runtimes and clients find them."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from core import Model, ModelSettings
from core.codecs import JSONCodec, decode_args, find_input_codec, find_request_codec
from core.errors import CodecError
from core.types import InferenceRequest, RequestInput
from core_huggingface.codec import HuggingFaceCodec, HuggingFaceRequestCodec


def test_the_hook_registers_both_codecs() -> None:
    assert find_input_codec(content_type="hf") is HuggingFaceCodec
    assert find_request_codec(content_type="hf") is HuggingFaceRequestCodec
    # The same documents as core's `json` codec, which the type hint finds first.
    assert issubclass(HuggingFaceCodec, JSONCodec)
    assert find_input_codec(type_hint=list[dict[str, Any]]) is JSONCodec


def test_pipeline_results_with_numpy_scalars_round_trip() -> None:
    results = [
        {"label": "positive", "score": np.float32(0.75), "start": np.int64(3), "flag": np.bool_(True)},
        [{"entity": "B-PER", "score": np.float16(0.5), "vector": np.arange(3, dtype=np.int32)}],
    ]
    tensor = HuggingFaceCodec.encode_output("results", results)
    assert (tensor.datatype, tensor.shape, tensor.parameters.content_type) == ("BYTES", [2], "hf")
    decoded = HuggingFaceCodec.decode_output(tensor)
    assert decoded == [
        {"label": "positive", "score": 0.75, "start": 3, "flag": True},
        [{"entity": "B-PER", "score": 0.5, "vector": [0, 1, 2]}],
    ]


def test_a_request_as_a_dict_of_values() -> None:
    request = HuggingFaceRequestCodec.encode_request(
        {"question": ["who?"], "scores": np.array([0.5, 0.25]), "chat": [[{"role": "user", "content": "hi"}]]}
    )
    assert [(i.name, i.datatype) for i in request.inputs] == [
        ("question", "BYTES"),
        ("scores", "FP64"),
        ("chat", "BYTES"),
    ]
    decoded = HuggingFaceRequestCodec.decode_request(request)
    assert decoded["question"] == ["who?"]
    assert decoded["scores"].tolist() == [0.5, 0.25]
    assert decoded["chat"] == [[{"role": "user", "content": "hi"}]]


def test_elements_that_are_not_json_are_a_codec_error() -> None:
    tensor = RequestInput(
        name="x", shape=[1], datatype="BYTES", data=["{nope"], parameters={"content_type": "hf"}
    )
    with pytest.raises(CodecError, match=r"tensor 'x' \(content type hf\): element is not JSON"):
        HuggingFaceCodec.decode_input(tensor)


class Conversations(Model):
    @decode_args
    async def predict(self, chats: list[dict[str, Any]]) -> list[str]:
        return [chat["role"] for chat in chats]


def test_a_decode_args_runtime_gets_structured_values() -> None:
    model = Conversations(ModelSettings(name="chats"))
    request = InferenceRequest(
        inputs=[HuggingFaceCodec.encode_input("chats", [{"role": "user"}, {"role": "tool"}])]
    )
    response = asyncio.run(model.predict(request))
    assert response.outputs[0].data == ["user", "tool"]
