"""core.client.types: KServe-named tensors, requests and responses. Every
datatype through REST (binary and JSON) and gRPC (raw and typed), against
core's own server-side parsing and rendering, the codecs, and bad data."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from core.client.types import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput
from core.codecs import DatetimeCodec, NumpyRequestCodec, StringCodec, StringRequestCodec
from core.codecs.pandas import PandasCodec
from core.errors import CoreError
from core.grpc.converters import request_from_proto, response_to_proto
from core.grpc.generated import inference_pb2 as pb
from core.rest.binary import (
    ALL_BINARY,
    BinaryOutputs,
    read_binary_inputs,
    render_binary,
    split_body,
    take_binary_outputs,
)
from core.rest.fast_infer import parse_inference_request
from core.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput, to_ndarray

DATATYPES = ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]
DATATYPES += ["FP16", "FP32", "FP64", "BF16", "BYTES"]


def sample(datatype: str, binary: bool = True) -> np.ndarray:
    """A [2, 3] array of `datatype` with its extreme values."""
    if datatype == "BOOL":
        values: Any = [True, False, True, False, False, True]
    elif datatype == "BYTES":
        odd = b"\xff\x00" if binary else b"nul"  # JSON carries only UTF-8 text
        values = np.array([b"a", b"", "\u00e9".encode(), odd, b"xyz", b"tail\x00"], dtype=object)
    elif datatype == "BF16":  # exact in bfloat16
        values = np.array([0.0, -1.5, 3.25, 1024.0, 2.0**-10, -65536.0], dtype=np.float32)
    elif datatype.startswith("FP"):
        dtype = np.dtype(datatype.replace("FP", "float"))
        info = np.finfo(dtype)
        values = np.array([0.0, -1.5, 0.1, info.max, info.tiny, -info.max], dtype=dtype)
    else:
        iinfo = np.iinfo(datatype.lower())
        values = np.array([iinfo.min, iinfo.max, 0, 1, iinfo.max - 1, iinfo.min + 1], dtype=datatype.lower())
    return np.asarray(values).reshape(2, 3)


def tensor(kind: type[Any], datatype: str, binary: bool, name: str = "t") -> Any:
    made = kind(name, [2, 3], datatype)
    made.set_data_from_numpy(sample(datatype, binary), binary_data=binary)
    return made


def over_json(content: Any) -> Any:
    """A dict to_rest gave, through the wire and back."""
    return orjson.loads(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY))


def assert_same(found: np.ndarray, datatype: str, binary: bool = True) -> None:
    expected = sample(datatype, binary)
    assert found.dtype == expected.dtype
    np.testing.assert_array_equal(found, expected)


# Round trips


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_request_round_trips_through_rest(datatype: str, binary: bool) -> None:
    request = InferRequest("m", [tensor(InferInput, datatype, binary)], request_id="7")
    body, json_length = request.to_rest()
    if binary:
        assert isinstance(body, bytes) and json_length is not None
        parsed = InferRequest.from_bytes(body, json_length, "m")
    else:
        assert isinstance(body, dict) and json_length is None
        parsed = InferRequest.from_rest(over_json(body), "m")
    assert parsed.id == "7" and parsed.model_name == "m"
    assert_same(parsed.inputs[0].as_numpy(), datatype, binary)
    assert parsed == request


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_response_round_trips_through_rest(datatype: str, binary: bool) -> None:
    outputs = [tensor(InferOutput, datatype, binary)]
    response = InferResponse("7", "m", outputs, model_version="2", use_binary_outputs=binary)
    body, json_length = response.to_rest()
    if binary:
        assert isinstance(body, bytes) and json_length is not None
        parsed = InferResponse.from_bytes(body, json_length)
    else:
        assert json_length is None
        parsed = InferResponse.from_rest(over_json(body))
    assert (parsed.id, parsed.model_name, parsed.model_version) == ("7", "m", "2")
    found = parsed.as_numpy("t")
    assert found is not None
    assert_same(found, datatype, binary)


@pytest.mark.parametrize("binary", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_round_trips_through_grpc(datatype: str, binary: bool) -> None:
    request = InferRequest("m", [tensor(InferInput, datatype, binary)], request_id="7", model_version="2")
    message = pb.ModelInferRequest.FromString(request.to_grpc().SerializeToString())
    # FP16 and BF16 have no typed contents field: they go raw either way.
    raw = binary or datatype in ("FP16", "BF16")
    assert len(message.raw_input_contents) == (1 if raw else 0)
    assert message.inputs[0].HasField("contents") is not raw
    assert not message.inputs[0].parameters  # binary_data_size is REST framing
    parsed = InferRequest.from_grpc(message)
    assert (parsed.id, parsed.model_version, parsed.from_grpc) == ("7", "2", True)
    assert_same(parsed.inputs[0].as_numpy(), datatype, binary)

    response = InferResponse("7", "m", [tensor(InferOutput, datatype, binary)], use_binary_outputs=binary)
    answer = pb.ModelInferResponse.FromString(response.to_grpc().SerializeToString())
    assert len(answer.raw_output_contents) == (1 if raw else 0)
    found = InferResponse.from_grpc(answer).as_numpy("t")
    assert found is not None
    assert_same(found, datatype, binary)


# Against core's server side


def mixed_request(binary: bool = True) -> InferRequest:
    """Inputs binary (but for one, sent as JSON) or all JSON."""
    return InferRequest(
        "m",
        [
            # Not FP32: core's server rejects float32's largest value in the
            # shortest form orjson writes it in (3.4028235e38 > float32 max).
            tensor(InferInput, "FP64", binary, "floats"),
            tensor(InferInput, "BYTES", binary, "bytes"),
            tensor(InferInput, "INT64", False, "ints"),
        ],
        request_id="r1",
        parameters={"content_type": "np", "temperature": 0.5, "top_k": 3, "greedy": True},
        request_outputs=[RequestedOutput("a", binary_data=True), RequestedOutput("b")],
    )


def assert_server_request(payload: InferenceRequest, binary: bool = True) -> None:
    assert payload.id == "r1"
    assert payload.parameters is not None
    assert payload.parameters.model_dump(exclude_none=True) == {
        "content_type": "np",
        "temperature": 0.5,
        "top_k": 3,
        "greedy": True,
    }
    arrays = {tensor.name: to_ndarray(tensor) for tensor in payload.inputs}
    assert_same(arrays["floats"], "FP64")
    assert_same(arrays["bytes"], "BYTES", binary)
    assert_same(arrays["ints"], "INT64", binary=False)
    assert [output.name for output in payload.outputs or ()] == ["a", "b"]


def test_server_parses_a_binary_rest_request() -> None:
    body, json_length = mixed_request().to_rest()
    assert isinstance(body, bytes)
    header, raw = split_body(body, str(json_length))
    payload = parse_inference_request(header)
    read_binary_inputs(payload, raw)
    binary = take_binary_outputs(payload)
    assert binary is not None and "a" in binary and "b" not in binary
    assert_server_request(payload)


def test_server_parses_a_json_rest_request() -> None:
    content, json_length = mixed_request(binary=False).to_rest()
    assert json_length is None
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    assert_server_request(parse_inference_request(body), binary=False)


def test_server_parses_a_grpc_request() -> None:
    message = mixed_request().to_grpc()
    # One raw input makes every input raw: the protocol forbids mixing.
    assert len(message.raw_input_contents) == 3
    assert not message.outputs[0].parameters  # binary_data is REST framing
    assert_server_request(request_from_proto(pb.ModelInferRequest.FromString(message.SerializeToString())))


def server_response() -> InferenceResponse:
    return InferenceResponse(
        model_name="m",
        model_version="1",
        id="r1",
        parameters=Parameters(content_type="np"),
        outputs=[
            ResponseOutput(name="f", shape=[2, 3], datatype="FP32", data=sample("FP32").ravel().tolist()),
            ResponseOutput(
                name="s", shape=[2, 3], datatype="BYTES", data=sample("BYTES", False).ravel().tolist()
            ),
            ResponseOutput(name="u", shape=[2, 3], datatype="UINT64", data=sample("UINT64").ravel().tolist()),
        ],
    )


def assert_client_response(response: InferResponse) -> None:
    assert (response.id, response.model_name, response.model_version) == ("r1", "m", "1")
    assert response.parameters == {"content_type": "np"}
    for name, datatype in (("f", "FP32"), ("s", "BYTES"), ("u", "UINT64")):
        found = response.as_numpy(name)
        assert found is not None
        assert_same(found, datatype, binary=False)
    assert response.as_numpy("missing") is None


@pytest.mark.parametrize(
    "binary",
    [ALL_BINARY, BinaryOutputs(False, {"s": True}), BinaryOutputs(False)],
    ids=["all", "some", "none"],
)
def test_client_parses_a_server_rest_response(binary: BinaryOutputs) -> None:
    body, json_length = render_binary(server_response(), binary)
    if json_length is None:
        response = InferResponse.from_rest(orjson.loads(body))
    else:
        response = InferResponse.from_bytes(body, json_length)
    assert_client_response(response)


def test_client_parses_a_server_grpc_response() -> None:
    message = response_to_proto(server_response())
    assert_client_response(
        InferResponse.from_grpc(pb.ModelInferResponse.FromString(message.SerializeToString()))
    )


def test_binary_outputs_are_views_of_the_body_decoded_on_demand() -> None:
    body, json_length = render_binary(server_response(), ALL_BINARY)
    assert json_length is not None
    response = InferResponse.from_bytes(body, json_length)
    floats = response.as_numpy("f")
    assert floats is not None and not floats.flags.writeable
    assert np.shares_memory(floats, np.frombuffer(body, dtype=np.uint8))
    assert response.outputs[0].data is None  # raw: read with as_numpy


def test_responses_compare_equal_whatever_the_wire() -> None:
    body, json_length = render_binary(server_response(), ALL_BINARY)
    assert json_length is not None
    binary = InferResponse.from_bytes(body, json_length)
    json = InferResponse.from_rest(orjson.loads(render_binary(server_response(), BinaryOutputs(False))[0]))
    assert binary == json
    assert binary.outputs[0] != json.outputs[1]


# Arrays are kept, not copied


def test_set_data_from_numpy_keeps_the_array() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = InferInput.from_numpy("x", array)
    assert raw.as_numpy() is array
    assert raw.parameters == {"binary_data_size": 24} and raw.data is None
    as_json = InferInput.from_numpy("x", array, binary_data=False)
    assert np.shares_memory(as_json.data, array) and as_json.parameters is None
    # A non-contiguous or big-endian array is made writable as JSON, and as raw little-endian.
    odd = np.arange(6, dtype=">i4").reshape(3, 2).T
    request = InferRequest("m", [InferInput.from_numpy("odd", odd, binary_data=False)])
    content, _ = request.to_rest()
    assert isinstance(content, dict)
    assert over_json(content)["inputs"][0]["data"] == [0, 2, 4, 1, 3, 5]
    body, json_length = InferRequest("m", [InferInput.from_numpy("odd", odd)]).to_rest()
    assert isinstance(body, bytes) and json_length is not None
    np.testing.assert_array_equal(InferRequest.from_bytes(body, json_length, "m").inputs[0].as_numpy(), odd)


def test_inputs_given_as_lists_follow_kserve() -> None:
    request = InferRequest(
        "m",
        [
            InferInput("x", [2, 2], "INT32", data=[[1, 2], [3, 4]]),
            InferInput("s", [2], "BYTES", data=[b"a", "b"]),
        ],
    )
    content, json_length = request.to_rest()
    assert json_length is None and isinstance(content, dict)
    assert [entry["data"] for entry in over_json(content)["inputs"]] == [[[1, 2], [3, 4]], ["a", "b"]]
    message = request.to_grpc()
    assert list(message.inputs[0].contents.int_contents) == [1, 2, 3, 4]
    assert list(message.inputs[1].contents.bytes_contents) == [b"a", b"b"]
    assert request.inputs[1].as_string() == ["a", "b"]
    assert request.get_input_by_name("s") is request.inputs[1] and request.get_input_by_name("z") is None


def test_kserve_repr_and_dict() -> None:
    item = InferInput("x", [1], "INT32", data=[5])
    assert repr(item) == '"name": "x","shape": [1],"datatype": "INT32","data": [5],"parameters": None'
    assert item.to_dict() == {"name": "x", "shape": [1], "datatype": "INT32", "data": [5], "parameters": None}
    assert (
        repr(RequestedOutput("y", binary_data=False))
        == "RequestedOutput(name=y, parameters={'binary_data': False})"
    )
    assert repr(InferRequest("m", [item], request_id="1")).startswith(
        '"id": "1","model_name": "m","inputs": ['
    )


# Codecs


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [1, 2, 3],
            "b": [0.5, 1.5, -2.0],
            "c": ["x", "y", "\u00e9"],
            "d": [True, False, True],
            "when": pd.to_datetime(["2024-01-01T00:00:00", "2024-06-30T12:30:00", "2025-12-31T23:59:59"]),
        }
    )


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_dataframe_round_trip(binary: bool) -> None:
    request = InferRequest.encode("m", frame(), binary_data=binary)
    assert request.parameters == {"content_type": "pd"}
    assert [item.name for item in request.inputs] == ["a", "b", "c", "d", "when"]
    assert [(item.parameters or {}).get("content_type") for item in request.inputs] == [
        "np",
        "np",
        "str",
        "np",
        "datetime",
    ]
    pd.testing.assert_frame_equal(request.as_dataframe(), frame())
    # The server sees the same frame, whichever way it came.
    body, json_length = request.to_rest()
    if json_length is None:
        payload = parse_inference_request(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
    else:
        assert isinstance(body, bytes)
        header, raw = split_body(body, str(json_length))
        payload = parse_inference_request(header)
        read_binary_inputs(payload, raw)
    pd.testing.assert_frame_equal(PandasCodec.decode_request(payload), frame())
    # And a frame the server returns comes back as one.
    response = InferResponse.from_grpc(response_to_proto(PandasCodec.encode_response("m", frame())))
    pd.testing.assert_frame_equal(response.as_dataframe(), frame())
    pd.testing.assert_frame_equal(response.decode(), frame())  # by its content type, "pd"


def test_strings_and_datetimes() -> None:
    request = InferRequest.encode("m", ["one", "deux"])
    assert request.parameters == {"content_type": "str"}
    assert request.inputs[0].shape == [2, 1]
    assert StringRequestCodec.decode_request(request_from_proto(request.to_grpc())) == ["one", "deux"]

    moments = [datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2025, 6, 30, 12, 30)]
    request = InferRequest.encode("m", moments, binary_data=False)
    assert request.inputs[0].parameters == {"content_type": "datetime"}
    content, _ = request.to_rest()
    payload = parse_inference_request(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY))
    assert DatetimeCodec.decode_input(payload.inputs[0]) == moments

    answer = InferenceResponse(model_name="m", outputs=[DatetimeCodec.encode_output("when", moments)])
    body, json_length = render_binary(answer, ALL_BINARY)
    assert json_length is not None
    response = InferResponse.from_bytes(body, json_length)
    assert response.outputs[0].decode() == moments  # by its content type
    assert response.decode() == moments  # one output: decoded by its own
    assert response.outputs[0].decode(StringCodec) == [moment.isoformat() for moment in moments]


def test_decoding_numpy_responses() -> None:
    array = np.arange(4, dtype=np.int16).reshape(2, 2)
    response = InferResponse.from_inference_response(NumpyRequestCodec.encode_response("m", array))
    np.testing.assert_array_equal(response.decode(), array)
    np.testing.assert_array_equal(response.decode(NumpyRequestCodec), array)
    plain = InferResponse(
        None, "m", [InferOutput.from_numpy("x", array), InferOutput.from_numpy("y", array.T)]
    )
    decoded = plain.decode()  # several outputs, no content type: one value each
    np.testing.assert_array_equal(decoded["y"], array.T)
    back = plain.to_inference_response()
    np.testing.assert_array_equal(to_ndarray(back.outputs[1]), array.T)
    assert back.outputs[0].parameters is None  # binary_data_size is not a model parameter


# Bad data


def test_set_data_from_numpy_checks_datatype_and_shape() -> None:
    item = InferInput("x", [2], "FP32")
    with pytest.raises(
        ValueError, match=r"tensor 'x': got unexpected datatype INT32 from numpy array, expected FP32"
    ):
        item.set_data_from_numpy(np.array([1, 2], dtype=np.int32))
    with pytest.raises(
        ValueError, match=r"tensor 'x': got unexpected numpy array shape \[1, 2\], expected \[2\]"
    ):
        item.set_data_from_numpy(np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="takes a numpy array, got list"):
        item.set_data_from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="takes a numpy array, got tuple"):
        InferInput.from_numpy("x", (1.0, 2.0))
    with pytest.raises(ValueError, match="tensor 'c': numpy dtype complex128 has no"):
        InferInput.from_numpy("c", np.zeros(2, dtype=complex))
    with pytest.raises(ValueError, match=r"tensor 's': element b'\\xff' is not UTF-8.*binary_data=True"):
        InferInput.from_numpy("s", np.array([b"\xff"], dtype=object), binary_data=False)


def test_malformed_binary_bodies_are_value_errors() -> None:
    body, json_length = InferRequest("m", [tensor(InferInput, "FP32", True)]).to_rest()
    assert isinstance(body, bytes) and json_length is not None
    with pytest.raises(
        ValueError,
        match="28 bytes of binary data follow the JSON header, but the inputs' binary_data_size add up to 24",
    ):
        InferRequest.from_bytes(body + b"\x00" * 4, json_length, "m")
    with pytest.raises(ValueError, match=r"binary_data_size 24 does not fit the 20 bytes"):
        InferRequest.from_bytes(body[:-4], json_length, "m")
    with pytest.raises(ValueError, match="JSON header length"):
        InferResponse.from_bytes(body, len(body) + 1)
    with pytest.raises(ValueError, match="has binary_data_size but the body has no binary data"):
        InferResponse.from_rest(
            {
                "model_name": "m",
                "outputs": [
                    {"name": "y", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}
                ],
            }
        )
    with pytest.raises(ValueError, match="output 'y' has no data"):
        InferResponse.from_rest(
            {"model_name": "m", "outputs": [{"name": "y", "shape": [1], "datatype": "FP32"}]}
        )


def test_data_that_does_not_fit_is_a_value_error_naming_the_tensor() -> None:
    shape_mismatch = InferOutput("y", [2, 3], "FP32")
    shape_mismatch._set_raw(b"\x00" * 20)
    with pytest.raises(
        ValueError, match=r"tensor 'y': shape \[2, 3\] of FP32 needs 24 bytes of raw data, got 20"
    ):
        shape_mismatch.as_numpy()
    bad_bytes = InferOutput("s", [2], "BYTES")
    bad_bytes._set_raw(b"\x09\x00\x00\x00ab")
    with pytest.raises(ValueError, match="tensor 's': raw BYTES element 0 of 9 bytes overruns") as raised:
        bad_bytes.as_numpy()
    assert not isinstance(raised.value, CoreError)  # the server's BadRequest, as a client error
    with pytest.raises(
        ValueError, match="tensor 'i': data does not fit INT8: Python integer 300 out of bounds"
    ):
        InferOutput("i", [1], "INT8", data=[300]).as_numpy()
    with pytest.raises(ValueError, match=r"tensor 'n': shape \[3\] holds 3 elements but data has 2"):
        InferOutput("n", [3], "FP32", data=[1.0, 2.0]).as_numpy()
    with pytest.raises(ValueError, match="unknown datatype 'FP8'"):
        InferOutput("q", [1], "FP8", data=[1]).as_numpy()
    with pytest.raises(ValueError, match="input 'x' has no data"):
        InferRequest("m", [InferInput("x", [1], "FP32")]).to_rest()
    with pytest.raises(ValueError, match="raw_output_contents has 1 entries for 2 tensors"):
        message = pb.ModelInferResponse(model_name="m", raw_output_contents=[b"\x00" * 4])
        message.outputs.add(name="a", datatype="FP32", shape=[1])
        message.outputs.add(name="b", datatype="FP32", shape=[1])
        InferResponse.from_grpc(message).as_numpy("a")  # outputs are read when first asked for


def test_importing_the_types_does_not_import_the_server() -> None:
    code = "import sys, core.client.types; print('fastapi' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
