"""Codecs: client-side round trips, the codec registry, `decode_args` and the
`Model` codec helpers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from core import Model, ModelParameters, ModelSettings, decode_args
from core.codecs import (
    Base64Codec,
    DatetimeCodec,
    DictRequestCodec,
    InputCodec,
    JSONCodec,
    NumpyCodec,
    NumpyRequestCodec,
    PandasCodec,
    RequestCodec,
    StringCodec,
    StringRequestCodec,
    find_input_codec,
    find_request_codec,
    input_codecs,
    register_codec,
    request_codecs,
)
from core.errors import BadRequest, CodecError
from core.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    to_ndarray,
)


def over_the_wire(tensor: Any) -> Any:
    """The tensor as the other side sees it: serialised to JSON and parsed back."""
    return type(tensor).model_validate_json(tensor.model_dump_json())


# Input codecs: round trips on both sides


@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, 2.5], [3.5, 4.5]], dtype=np.float32),
        np.array([1, 2, 3], dtype=np.int64),
        np.array([[True, False]]),
        np.array([0, 255], dtype=np.uint8),
        np.arange(24, dtype=np.float64).reshape(2, 3, 4),
        np.array(7, dtype=np.int16),
    ],
)
def test_numpy_codec_round_trip(array: np.ndarray) -> None:
    request_input = NumpyCodec.encode_input("x", array)
    assert request_input.datatype == Datatype(_datatype_of(array))
    assert request_input.shape == list(array.shape)
    assert request_input.parameters is not None
    assert request_input.parameters.content_type == "np"
    decoded = NumpyCodec.decode_input(over_the_wire(request_input))
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)

    output = NumpyCodec.encode_output("y", array)
    assert isinstance(output, ResponseOutput)
    decoded = NumpyCodec.decode_output(over_the_wire(output))
    np.testing.assert_array_equal(decoded, array)
    assert decoded.dtype == array.dtype


@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, 2.5], [3.5, 4.5]], dtype=np.float32),
        np.array([2**64 - 1, 0], dtype=np.uint64),
        np.array([[True, False]]),
        np.array(7, dtype=np.int16),
        np.array([[1, 2], [3, 4]], dtype=np.int32).T,  # not C-contiguous
        np.array([1.0, 2.0], dtype=">f8"),  # not native byte order: no cache
        np.array(["a", "bc"]),  # BYTES: no cache
    ],
)
def test_numpy_codec_array_form_equals_the_data(array: np.ndarray) -> None:
    """The array cached for `to_ndarray` when encoding is what converting the
    data back would give, and the model's array is not shared."""
    output = NumpyCodec.encode_output("y", array)
    cached = to_ndarray(output)
    converted = to_ndarray(output.model_copy(update={"data": list(output.data)}))
    assert cached.dtype == converted.dtype and cached.shape == converted.shape
    np.testing.assert_array_equal(cached, converted)
    assert not np.shares_memory(cached, array)


def test_numpy_codec_output_is_a_snapshot() -> None:
    """A model that reuses its output buffer does not change an encoded output."""
    buffer = np.array([1, 2, 3], dtype=np.int64)
    output = NumpyCodec.encode_output("y", buffer)
    buffer[:] = 0
    assert output.data == [1, 2, 3]
    assert to_ndarray(output).tolist() == [1, 2, 3]


def _datatype_of(array: np.ndarray) -> str:
    return {"f": "FP", "i": "INT", "u": "UINT", "b": "BOOL"}[array.dtype.kind] + (
        str(array.dtype.itemsize * 8) if array.dtype.kind != "b" else ""
    )


def test_numpy_codec_strings_become_bytes() -> None:
    request_input = NumpyCodec.encode_input("x", np.array(["a", "bc"]))
    assert request_input.datatype == Datatype.BYTES
    assert NumpyCodec.decode_input(over_the_wire(request_input)).tolist() == [b"a", b"bc"]


def test_numpy_codec_rejects_unsupported_dtype() -> None:
    with pytest.raises(CodecError, match="complex"):
        NumpyCodec.encode_output("y", np.array([1 + 2j]))


def test_string_codec_round_trip() -> None:
    texts = ["hello", "wörld", ""]
    request_input = StringCodec.encode_input("q", texts)
    assert request_input.datatype == Datatype.BYTES
    assert request_input.shape == [3, 1]
    assert StringCodec.decode_input(over_the_wire(request_input)) == texts
    output = StringCodec.encode_output("a", texts)
    assert StringCodec.decode_output(over_the_wire(output)) == texts


def test_string_codec_rejects_invalid_utf8() -> None:
    tensor = RequestInput(name="q", datatype="BYTES", shape=[1], data=[b"\xff\xfe"])
    with pytest.raises(CodecError, match="'q' is not valid UTF-8"):
        StringCodec.decode_input(tensor)


def test_base64_codec_round_trip() -> None:
    blobs = [b"\x00\x01\xff", b"png\x89", b""]
    request_input = Base64Codec.encode_input("img", blobs)
    assert request_input.data == ["AAH/", "cG5niQ==", ""]
    assert Base64Codec.decode_input(over_the_wire(request_input)) == blobs
    output = Base64Codec.encode_output("img", blobs)
    assert Base64Codec.decode_output(over_the_wire(output)) == blobs


def test_base64_codec_rejects_invalid_base64() -> None:
    tensor = RequestInput(name="img", datatype="BYTES", shape=[1], data=["not base64!"])
    with pytest.raises(CodecError, match="'img' is not valid base64"):
        Base64Codec.decode_input(tensor)


def test_datetime_codec_round_trip() -> None:
    moments = [
        datetime(2024, 2, 29, 12, 30, 15, 123456),
        datetime(1999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
    ]
    request_input = DatetimeCodec.encode_input("t", moments)
    assert request_input.data == ["2024-02-29T12:30:15.123456", "1999-12-31T23:59:00-05:00"]
    assert DatetimeCodec.decode_input(over_the_wire(request_input)) == moments
    output = DatetimeCodec.encode_output("t", moments)
    assert DatetimeCodec.decode_output(over_the_wire(output)) == moments


def test_datetime_codec_rejects_non_iso_text() -> None:
    tensor = RequestInput(name="t", datatype="BYTES", shape=[1], data=["yesterday"])
    with pytest.raises(CodecError, match="'t' is not ISO 8601"):
        DatetimeCodec.decode_input(tensor)


# Request codecs: round trips on both sides


def test_numpy_request_codec_round_trip() -> None:
    array = np.array([[1.0, 2.0], [3.0, 4.0]])
    request = NumpyRequestCodec.encode_request(array)
    assert request.parameters is not None
    assert request.parameters.content_type == "np"
    assert [i.name for i in request.inputs] == ["input-0"]
    np.testing.assert_array_equal(NumpyRequestCodec.decode_request(over_the_wire(request)), array)

    response = NumpyRequestCodec.encode_response("m", array, "3")
    assert (response.model_name, response.model_version) == ("m", "3")
    assert [o.name for o in response.outputs] == ["output-0"]
    np.testing.assert_array_equal(NumpyRequestCodec.decode_response(over_the_wire(response)), array)


def test_numpy_request_codec_custom_tensor_names() -> None:
    assert NumpyRequestCodec.encode_request(np.ones(2), input_name="feat").inputs[0].name == "feat"
    response = NumpyRequestCodec.encode_response("m", np.ones(2), output_name="pred")
    assert response.outputs[0].name == "pred"


def test_numpy_request_codec_needs_one_input() -> None:
    request = InferenceRequest(
        inputs=[NumpyCodec.encode_input("a", np.ones(1)), NumpyCodec.encode_input("b", np.ones(1))]
    )
    with pytest.raises(CodecError, match="exactly 1 input, got 2"):
        NumpyRequestCodec.decode_request(request)
    response = InferenceResponse(model_name="m", outputs=[])
    with pytest.raises(CodecError, match="got 0"):
        NumpyRequestCodec.decode_response(response)


def test_string_request_codec_round_trip() -> None:
    texts = ["a", "b c"]
    request = StringRequestCodec.encode_request(texts)
    assert StringRequestCodec.decode_request(over_the_wire(request)) == texts
    response = StringRequestCodec.encode_response("m", texts)
    assert StringRequestCodec.decode_response(over_the_wire(response)) == texts
    with pytest.raises(CodecError):
        StringRequestCodec.decode_request(InferenceRequest(inputs=[]))


def test_pandas_codec_round_trip() -> None:
    frame = pd.DataFrame(
        {
            "age": np.array([31, 42, 7], dtype=np.int64),
            "height": np.array([1.7, 1.8, 1.2], dtype=np.float64),
            "name": ["ann", "bob", "cé"],
            "member": [True, False, True],
        }
    )
    request = PandasCodec.encode_request(frame)
    assert request.parameters is not None
    assert request.parameters.content_type == "pd"
    by_name = {tensor.name: tensor for tensor in request.inputs}
    assert list(by_name) == ["age", "height", "name", "member"]
    assert by_name["age"].datatype == Datatype.INT64
    assert by_name["age"].shape == [3, 1]
    assert by_name["name"].datatype == Datatype.BYTES
    decoded = PandasCodec.decode_request(over_the_wire(request))
    pd.testing.assert_frame_equal(decoded, frame)

    response = PandasCodec.encode_response("m", frame, "1")
    assert response.model_version == "1"
    pd.testing.assert_frame_equal(PandasCodec.decode_response(over_the_wire(response)), frame)


def test_pandas_codec_round_trips_mixed_columns_through_json() -> None:
    frame = pd.DataFrame(
        {
            "count": [1, 2],
            "ratio": [1.5, 2.5],
            "name": ["x", "y"],
            "when": pd.to_datetime(["2024-01-01 00:00", "2024-02-01 10:00"]),
            "zoned": pd.to_datetime(["2024-01-01 00:00+02:00", "2024-02-01 10:00+02:00"]),
            "blob": [b"\x00\x01", b"zz"],
            "flag": [True, False],
        }
    )
    request = PandasCodec.encode_request(frame)
    content_types = {i.name: i.parameters.content_type for i in request.inputs if i.parameters}
    assert content_types == {
        "count": "np", "ratio": "np", "name": "str", "when": "datetime", "zoned": "datetime",
        "blob": "base64", "flag": "np",
    }  # fmt: skip
    back = PandasCodec.decode_request(InferenceRequest.model_validate_json(request.model_dump_json()))
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert [back[c].dtype.kind for c in ("count", "ratio", "when", "zoned", "flag")] == [
        "i",
        "f",
        "M",
        "M",
        "b",
    ]


def test_json_codec_round_trips_structured_values_with_numpy_scalars() -> None:
    values = [{"score": np.float32(0.5), "ids": np.arange(2), "ok": np.bool_(True)}, [1, "a"]]
    tensor = JSONCodec.encode_input("docs", values)
    assert (tensor.datatype, tensor.shape, tensor.parameters.content_type) == ("BYTES", [2], "json")
    assert JSONCodec.decode_input(tensor) == [{"score": 0.5, "ids": [0, 1], "ok": True}, [1, "a"]]
    assert DictRequestCodec.encode_request({"docs": values}).inputs[0].parameters.content_type == "json"
    bad = RequestInput(
        name="docs", shape=[1], datatype="BYTES", data=["{"], parameters={"content_type": "json"}
    )
    with pytest.raises(CodecError, match=r"tensor 'docs' \(content type json\): element is not JSON"):
        JSONCodec.decode_input(bad)


def test_dict_codec_decodes_each_tensor_by_its_content_type() -> None:
    request = DictRequestCodec.encode_request(
        {"ids": np.array([[1, 2]], dtype=np.int64), "names": ["a", "b"], "raw": [b"\x00"]}
    )
    assert [(i.name, i.datatype, i.parameters.content_type) for i in request.inputs] == [
        ("ids", "INT64", "np"),
        ("names", "BYTES", "str"),
        ("raw", "BYTES", "base64"),
    ]
    decoded = DictRequestCodec.decode_request(InferenceRequest.model_validate_json(request.model_dump_json()))
    assert decoded["ids"].tolist() == [[1, 2]]
    assert (decoded["names"], decoded["raw"]) == (["a", "b"], [b"\x00"])
    plain = InferenceRequest(inputs=[RequestInput(name="t", shape=[1], datatype="BYTES", data=["hi"])])
    assert DictRequestCodec.decode_request(plain) == {"t": ["hi"]}
    assert find_request_codec("dict") is DictRequestCodec


def test_pandas_codec_decodes_tensors_without_content_type() -> None:
    request = InferenceRequest(
        inputs=[
            RequestInput(name="a", datatype="FP32", shape=[2], data=[1.0, 2.0]),
            RequestInput(name="b", datatype="BYTES", shape=[2], data=["x", "y"]),
        ]
    )
    frame = PandasCodec.decode_request(request)
    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist() == [1.0, 2.0]
    assert frame["b"].tolist() == ["x", "y"]


def test_pandas_codec_multi_column_tensor_becomes_a_column_of_rows() -> None:
    request = InferenceRequest(
        inputs=[RequestInput(name="v", datatype="INT32", shape=[2, 2], data=[1, 2, 3, 4])]
    )
    frame = PandasCodec.decode_request(request)
    assert len(frame) == 2
    assert [row.tolist() for row in frame["v"]] == [[1, 2], [3, 4]]


def test_pandas_codec_columns_of_different_lengths() -> None:
    request = InferenceRequest(
        inputs=[
            RequestInput(name="a", datatype="FP32", shape=[2], data=[1.0, 2.0]),
            RequestInput(name="b", datatype="FP32", shape=[3], data=[1.0, 2.0, 3.0]),
        ]
    )
    with pytest.raises(CodecError, match="one length"):
        PandasCodec.decode_request(request)


def test_pandas_codec_unknown_column_content_type() -> None:
    request = InferenceRequest(
        inputs=[
            RequestInput(
                name="a", datatype="FP32", shape=[1], data=[1.0], parameters=Parameters(content_type="nope")
            )
        ]
    )
    with pytest.raises(CodecError, match=r"'a'.*'nope'"):
        PandasCodec.decode_request(request)


# The codec registry


def test_built_in_codecs_by_content_type() -> None:
    assert find_input_codec("np") is NumpyCodec
    assert find_input_codec("str") is StringCodec
    assert find_input_codec("base64") is Base64Codec
    assert find_input_codec("datetime") is DatetimeCodec
    assert find_request_codec("np") is NumpyRequestCodec
    assert find_request_codec("str") is StringRequestCodec
    assert find_request_codec("pd") is PandasCodec
    assert find_input_codec("pd") is None
    assert find_input_codec("unknown") is None
    assert find_request_codec("base64") is None
    assert set(input_codecs()) >= {"np", "str", "base64", "datetime"}
    assert set(request_codecs()) >= {"np", "str", "pd"}


def test_codecs_by_type_hint() -> None:
    assert find_input_codec(type_hint=np.ndarray) is NumpyCodec
    assert find_input_codec(type_hint=list[str]) is StringCodec
    assert find_input_codec(type_hint=list[bytes]) is Base64Codec
    assert find_input_codec(type_hint=list[datetime]) is DatetimeCodec
    assert find_input_codec(type_hint=dict[str, int]) is None
    assert find_request_codec(type_hint=pd.DataFrame) is PandasCodec
    assert find_request_codec(type_hint=np.ndarray) is NumpyRequestCodec


def test_codecs_by_payload() -> None:
    assert find_input_codec(payload=np.zeros(2)) is NumpyCodec
    assert find_input_codec(payload=["a"]) is StringCodec
    assert find_input_codec(payload=[b"a"]) is Base64Codec
    assert find_input_codec(payload=[datetime(2020, 1, 1)]) is DatetimeCodec
    assert find_input_codec(payload=["a", b"b"]) is None
    assert find_input_codec(payload=42) is None
    assert find_request_codec(payload=pd.DataFrame({"a": [1]})) is PandasCodec
    assert find_request_codec(payload=np.zeros(2)) is NumpyRequestCodec
    assert find_request_codec(payload=["x"]) is StringRequestCodec


class UpperCodec(InputCodec):
    """A test codec: text tensors decoded in upper case."""

    ContentType = "x-upper"
    TypeHint: ClassVar[Any] = tuple[str, ...]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, tuple) and all(isinstance(item, str) for item in payload)

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> tuple[str, ...]:
        return tuple(item.upper() for item in StringCodec.decode_input(request_input))

    @classmethod
    def encode_output(cls, name: str, payload: tuple[str, ...], **kwargs: Any) -> ResponseOutput:
        output = StringCodec.encode_output(name, [item.lower() for item in payload])
        output.parameters = Parameters(content_type=cls.ContentType)
        return output


class CountRequestCodec(RequestCodec):
    ContentType = "x-count"

    @classmethod
    def decode_request(cls, request: InferenceRequest) -> int:
        return len(request.inputs)


@pytest.mark.usefixtures("isolated_codecs")
def test_register_codec_by_content_type_hint_and_payload() -> None:
    register_codec(UpperCodec)
    register_codec(CountRequestCodec)
    assert find_input_codec("x-upper") is UpperCodec
    assert find_input_codec(type_hint=tuple[str, ...]) is UpperCodec
    assert find_input_codec(payload=("a", "b")) is UpperCodec
    assert find_request_codec("x-count") is CountRequestCodec
    assert find_input_codec("x-count") is None
    assert "x-upper" in input_codecs()
    assert "x-count" in request_codecs()


@pytest.mark.usefixtures("isolated_codecs")
def test_register_codec_replaces_the_same_content_type() -> None:
    class OtherStringCodec(StringCodec):
        pass

    register_codec(OtherStringCodec)
    assert find_input_codec("str") is OtherStringCodec


def test_register_codec_rejects_non_codecs() -> None:
    with pytest.raises(TypeError):
        register_codec(dict)  # type: ignore[arg-type]


def test_registered_codecs_do_not_leak_between_tests() -> None:
    assert find_input_codec("x-upper") is None
    assert find_input_codec("str") is StringCodec


# decode_args: the simplified interface


def model_settings(**fields: Any) -> ModelSettings:
    fields.setdefault("name", "m")
    return ModelSettings(**fields)


class Answerer(Model):
    @decode_args
    async def predict(self, questions: list[str], k: np.ndarray) -> np.ndarray:
        self.seen = (questions, k)
        return np.array([len(q) * int(k.sum()) for q in questions], dtype=np.int64)


def question_request(**extra_inputs: Any) -> InferenceRequest:
    return InferenceRequest(
        inputs=[
            StringCodec.encode_input("questions", ["why", "how?"]),
            RequestInput(name="k", datatype="INT32", shape=[1, 2], data=[1, 2]),
            *extra_inputs.values(),
        ]
    )


def test_decode_args_decodes_by_type_hint_and_encodes_the_return(run: Any) -> None:
    model = Answerer(model_settings(parameters=ModelParameters(version="4")))
    response = run(model.predict(question_request()))
    questions, k = model.seen
    assert questions == ["why", "how?"]
    assert isinstance(k, np.ndarray)
    assert k.dtype == np.int32
    assert k.shape == (1, 2)
    assert response.model_name == "m"
    assert response.model_version == "4"
    assert [o.name for o in response.outputs] == ["output-0"]
    assert response.outputs[0].datatype == Datatype.INT64
    assert NumpyRequestCodec.decode_response(response).tolist() == [9, 12]


def test_decode_args_request_content_type_beats_the_type_hint(run: Any) -> None:
    class Raw(Model):
        @decode_args
        async def predict(self, blobs: list[str]) -> list[str]:
            return [repr(blob) for blob in blobs]

    request = InferenceRequest(inputs=[Base64Codec.encode_input("blobs", [b"\x01"])])
    response = run(Raw(model_settings()).predict(request))
    assert StringRequestCodec.decode_response(response) == ["b'\\x01'"]


def test_decode_args_missing_input(run: Any) -> None:
    request = InferenceRequest(inputs=[StringCodec.encode_input("questions", ["a"])])
    with pytest.raises(BadRequest, match="input 'k' is missing"):
        run(Answerer(model_settings()).predict(request))


def test_decode_args_unknown_input(run: Any) -> None:
    extra = RequestInput(name="surprise", datatype="FP32", shape=[1], data=[1.0])
    with pytest.raises(BadRequest, match="unknown inputs \\['surprise'\\]") as caught:
        run(Answerer(model_settings()).predict(question_request(extra=extra)))
    assert "questions" in caught.value.message


def test_decode_args_optional_input_keeps_its_default(run: Any) -> None:
    class WithDefault(Model):
        @decode_args
        async def predict(self, x: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
            return x * (2 if scale is None else scale)

    request = NumpyRequestCodec.encode_request(np.array([1.0, 2.0]), input_name="x")
    response = run(WithDefault(model_settings()).predict(request))
    assert NumpyRequestCodec.decode_response(response).tolist() == [2.0, 4.0]


def test_decode_args_tuple_return_gives_numbered_outputs(run: Any) -> None:
    class Pair(Model):
        @decode_args
        async def predict(self, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
            return x + 1, [str(v) for v in x.ravel()]

    request = NumpyRequestCodec.encode_request(np.array([1, 2], dtype=np.int64), input_name="x")
    response = run(Pair(model_settings()).predict(request))
    assert [o.name for o in response.outputs] == ["output-0", "output-1"]
    assert NumpyCodec.decode_output(response.outputs[0]).tolist() == [2, 3]
    assert response.outputs[1].datatype == Datatype.BYTES
    assert StringCodec.decode_output(response.outputs[1]) == ["1", "2"]


def test_decode_args_return_without_hint_uses_the_payload(run: Any) -> None:
    class NoHint(Model):
        @decode_args
        async def predict(self, x: np.ndarray):  # type: ignore[no-untyped-def]
            return ["yes"] * len(x)

    request = NumpyRequestCodec.encode_request(np.array([1, 2]), input_name="x")
    response = run(NoHint(model_settings()).predict(request))
    assert StringCodec.decode_output(response.outputs[0]) == ["yes", "yes"]


def test_decode_args_dataframe_return(run: Any) -> None:
    class Frame(Model):
        @decode_args
        async def predict(self, x: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame({"double": x * 2, "half": x / 2})

    request = NumpyRequestCodec.encode_request(np.array([2.0, 4.0]), input_name="x")
    response = run(Frame(model_settings()).predict(request))
    assert response.parameters is not None
    assert response.parameters.content_type == "pd"
    frame = PandasCodec.decode_response(response)
    assert frame["double"].tolist() == [4.0, 8.0]
    assert frame["half"].tolist() == [1.0, 2.0]


def test_decode_args_unencodable_return(run: Any) -> None:
    class Bad(Model):
        @decode_args
        async def predict(self, x: np.ndarray) -> object:
            return object()

    request = NumpyRequestCodec.encode_request(np.array([1.0]), input_name="x")
    with pytest.raises(CodecError, match="output 'output-0'"):
        run(Bad(model_settings()).predict(request))


# Model.decode / decode_request / encode / encode_response


def test_model_decode_uses_the_request_input_content_type_first() -> None:
    settings = model_settings(
        inputs=[
            MetadataTensor(name="x", datatype="BYTES", shape=[-1], parameters=Parameters(content_type="np"))
        ]
    )
    model = Model(settings)
    request_input = StringCodec.encode_input("x", ["a"])  # content_type "str"
    assert model.decode(request_input, default_codec=NumpyCodec) == ["a"]


def test_model_decode_then_uses_the_model_settings_inputs() -> None:
    settings = model_settings(
        inputs=[
            MetadataTensor(name="x", datatype="BYTES", shape=[-1], parameters=Parameters(content_type="str"))
        ]
    )
    model = Model(settings)
    request_input = RequestInput(name="x", datatype="BYTES", shape=[1], data=["a"])
    assert model.decode(request_input, default_codec=NumpyCodec) == ["a"]
    other = RequestInput(name="other", datatype="BYTES", shape=[1], data=["a"])
    assert model.decode(other, default_codec=NumpyCodec).tolist() == [b"a"]


def test_model_decode_falls_back_to_default_codec_then_raw_data() -> None:
    model = Model(model_settings())
    request_input = RequestInput(name="x", datatype="FP32", shape=[2], data=[1, 2])
    decoded = model.decode(request_input, default_codec=NumpyCodec)
    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == np.float32
    assert model.decode(request_input) == [1, 2]


def test_model_decode_uses_settings_loaded_from_a_file(tmp_path: Any) -> None:
    from core.settings import load_settings_file

    path = tmp_path / "model-settings.json"
    path.write_text(
        '{"name": "m", "inputs": [{"name": "when", "datatype": "BYTES", "shape": [-1, 1],'
        ' "parameters": {"content_type": "datetime"}}]}'
    )
    model = Model(load_settings_file(ModelSettings, path))
    request_input = RequestInput(name="when", datatype="BYTES", shape=[1, 1], data=["2020-05-06T07:08:09"])
    assert model.decode(request_input) == [datetime(2020, 5, 6, 7, 8, 9)]


def test_model_decode_request_resolution_order() -> None:
    frame_request = PandasCodec.encode_request(pd.DataFrame({"a": [1.0, 2.0]}))
    plain = InferenceRequest(inputs=[RequestInput(name="a", datatype="FP32", shape=[2], data=[1.0, 2.0])])

    model = Model(model_settings())
    assert isinstance(model.decode_request(frame_request, default_codec=NumpyRequestCodec), pd.DataFrame)
    assert isinstance(model.decode_request(plain, default_codec=NumpyRequestCodec), np.ndarray)
    assert model.decode_request(plain) is plain

    pd_model = Model(model_settings(parameters=ModelParameters(content_type="pd")))
    assert isinstance(pd_model.decode_request(plain, default_codec=NumpyRequestCodec), pd.DataFrame)
    # The request's own content type beats the model's.
    np_request = NumpyRequestCodec.encode_request(np.ones(3))
    assert isinstance(pd_model.decode_request(np_request), np.ndarray)


def test_model_encode_output_resolution_order() -> None:
    settings = model_settings(
        outputs=[
            MetadataTensor(
                name="up", datatype="BYTES", shape=[-1], parameters=Parameters(content_type="base64")
            )
        ]
    )
    model = Model(settings)
    output = model.encode([b"\x00"], RequestOutput(name="up"))
    assert output.parameters is not None
    assert output.parameters.content_type == "base64"
    assert output.data == ["AA=="]
    output = model.encode(["t"], RequestOutput(name="plain"))
    assert output.parameters is not None
    assert output.parameters.content_type == "str"
    output = model.encode(np.array([1, 2]), RequestOutput(name="n", parameters=Parameters(content_type="np")))
    assert output.name == "n"
    assert output.datatype == Datatype.INT64


def test_model_encode_response() -> None:
    model = Model(model_settings(parameters=ModelParameters(version="7")))
    response = model.encode_response(np.array([[1.0, 2.0]]), default_codec=NumpyRequestCodec)
    assert (response.model_name, response.model_version) == ("m", "7")
    assert NumpyRequestCodec.decode_response(response).tolist() == [[1.0, 2.0]]

    response = model.encode_response(["a", "b"])
    assert StringRequestCodec.decode_response(response) == ["a", "b"]

    frame = pd.DataFrame({"p": [0.1, 0.9]})
    response = model.encode_response(frame, default_codec=NumpyRequestCodec)  # cannot encode a frame
    assert response.parameters is not None
    assert response.parameters.content_type == "pd"
    pd.testing.assert_frame_equal(PandasCodec.decode_response(response), frame)

    response = model.encode_response((np.zeros(1), ["x"]))
    assert [o.name for o in response.outputs] == ["output-0", "output-1"]


def test_unknown_content_type_is_a_bad_request_naming_the_known_ones() -> None:
    from core import Model, ModelSettings
    from core.errors import BadRequest
    from core.types import InferenceRequest

    model = Model(ModelSettings(name="m"))
    request = InferenceRequest.model_validate(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": ["a"],
                    "parameters": {"content_type": "nope"},
                }
            ]
        }
    )
    with pytest.raises(BadRequest, match=r"unknown content type 'nope'.*str"):
        model.decode(request.inputs[0])
    request.parameters = Parameters(content_type="nope")
    with pytest.raises(BadRequest, match=r"unknown content type 'nope'.*pd"):
        model.decode_request(request)
