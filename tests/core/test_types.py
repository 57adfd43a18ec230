"""OIP types: the datatype table, tensor data conversion, pydantic validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from core.errors import BadRequest
from core.types import (
    NUMPY_DTYPES,
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
    to_datatype,
    to_dtype,
    to_ndarray,
)
from core.types.dataplane import parameters_dict

EXPECTED_DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
    "BF16": np.float32,
}


def tensor(datatype: str, shape: list[int], data: object, name: str = "x") -> RequestInput:
    return RequestInput(name=name, datatype=datatype, shape=shape, data=data)


# The datatype table


def test_every_oip_datatype_is_in_the_table() -> None:
    assert {d.value for d in Datatype} == set(EXPECTED_DTYPES)
    assert set(NUMPY_DTYPES) == set(Datatype)


@pytest.mark.parametrize(("datatype", "dtype"), EXPECTED_DTYPES.items())
def test_to_dtype(datatype: str, dtype: type) -> None:
    assert to_dtype(datatype) == np.dtype(dtype)
    assert to_dtype(Datatype(datatype)) == np.dtype(dtype)


@pytest.mark.parametrize("datatype", [d for d in EXPECTED_DTYPES if d not in ("BYTES", "BF16")])
def test_to_datatype_reverses_the_table(datatype: str) -> None:
    assert to_datatype(to_dtype(datatype)) == Datatype(datatype)


def test_to_datatype_float32_is_fp32_not_bf16() -> None:
    assert to_datatype(np.dtype(np.float32)) == Datatype.FP32


@pytest.mark.parametrize("dtype", [np.dtype("U5"), np.dtype("S3"), np.dtype(object), np.str_, np.bytes_])
def test_to_datatype_text_is_bytes(dtype: object) -> None:
    assert to_datatype(dtype) == Datatype.BYTES  # type: ignore[arg-type]


def test_to_datatype_accepts_scalar_types_and_any_byte_order() -> None:
    assert to_datatype(np.float64) == Datatype.FP64  # type: ignore[arg-type]
    assert to_datatype(np.dtype(">f4")) == Datatype.FP32
    assert to_datatype(np.dtype(">i8")) == Datatype.INT64


@pytest.mark.parametrize("dtype", [np.dtype("complex64"), np.dtype("datetime64[s]")])
def test_to_datatype_rejects_types_oip_lacks(dtype: np.dtype) -> None:
    with pytest.raises(ValueError, match="no Open Inference Protocol datatype"):
        to_datatype(dtype)


def test_to_dtype_rejects_unknown_datatype() -> None:
    with pytest.raises(ValueError):
        to_dtype("FP8")


# to_ndarray: valid data


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("BOOL", [True, False, True, False]),
        ("UINT8", [0, 1, 254, 255]),
        ("UINT16", [0, 1, 2, 65535]),
        ("UINT32", [0, 1, 2, 2**32 - 1]),
        ("UINT64", [0, 1, 2, 2**64 - 1]),
        ("INT8", [-128, 0, 1, 127]),
        ("INT16", [-(2**15), 0, 1, 2**15 - 1]),
        ("INT32", [-(2**31), 0, 1, 2**31 - 1]),
        ("INT64", [-(2**63), 0, 1, 2**63 - 1]),
        ("FP16", [0.5, 1.0, -2.0, 3.0]),
        ("FP32", [0.5, 1, -2.25, 3]),
        ("FP64", [0.1, 1, -2.25, 1e300]),
        ("BF16", [0.5, 1.0, -2.0, 3.0]),
    ],
)
def test_to_ndarray_every_numeric_datatype(datatype: str, data: list[object]) -> None:
    array = to_ndarray(tensor(datatype, [2, 2], data))
    assert array.dtype == to_dtype(datatype)
    assert array.shape == (2, 2)
    if datatype.startswith(("FP", "BF")):
        assert array.ravel().tolist() == pytest.approx(data)
    else:
        assert array.ravel().tolist() == data  # exact, even 2**64 - 1


def test_to_ndarray_flat_and_nested_data_give_the_same_array() -> None:
    flat = to_ndarray(tensor("INT32", [2, 3], [1, 2, 3, 4, 5, 6]))
    nested = to_ndarray(tensor("INT32", [2, 3], [[1, 2, 3], [4, 5, 6]]))
    np.testing.assert_array_equal(flat, nested)
    np.testing.assert_array_equal(flat, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32))


def test_to_ndarray_ints_are_accepted_as_floats() -> None:
    array = to_ndarray(tensor("FP32", [3], [1, 2.5, 3]))
    assert array.dtype == np.float32
    assert array.tolist() == [1.0, 2.5, 3.0]


def test_to_ndarray_scalar_shape_and_empty_tensor() -> None:
    assert to_ndarray(tensor("INT64", [], [7])).shape == ()
    empty = to_ndarray(tensor("FP32", [0, 3], []))
    assert empty.shape == (0, 3)
    assert empty.dtype == np.float32


def test_to_ndarray_is_cached_on_the_tensor() -> None:
    request_input = tensor("FP64", [2], [1.0, 2.0])
    assert to_ndarray(request_input) is to_ndarray(request_input)


def test_tensors_with_cached_arrays_still_compare_by_their_fields() -> None:
    first = tensor("FP32", [2, 2], [1.0, 2.0, 3.0, 4.0])
    second = tensor("FP32", [2, 2], [1.0, 2.0, 3.0, 4.0])
    to_ndarray(first)
    assert first == second
    to_ndarray(second)
    assert first == second
    assert first != tensor("FP32", [2, 2], [1.0, 2.0, 3.0, 5.0])
    assert "_ndarray" not in first.model_dump_json()


def test_cached_array_follows_replaced_data_and_shape() -> None:
    original = tensor("INT32", [2], [1, 2])
    assert to_ndarray(original).tolist() == [1, 2]
    copied = original.model_copy(update={"data": [3, 4]})
    assert to_ndarray(copied).tolist() == [3, 4]
    assert to_ndarray(original).tolist() == [1, 2]
    assert to_ndarray(original.model_copy()) is to_ndarray(original)
    original.shape = [1, 2]
    assert to_ndarray(original).shape == (1, 2)
    original.data = [5, 6]
    assert to_ndarray(original).tolist() == [[5, 6]]


def test_cached_array_survives_pickling() -> None:
    import pickle

    original = tensor("FP64", [2], [1.5, 2.5])
    to_ndarray(original)
    restored = pickle.loads(pickle.dumps(original))
    assert restored == original
    assert to_ndarray(restored).tolist() == [1.5, 2.5]


def test_to_ndarray_works_on_response_outputs() -> None:
    output = ResponseOutput(name="y", datatype="INT8", shape=[1, 2], data=[1, 2])
    np.testing.assert_array_equal(to_ndarray(output), np.array([[1, 2]], dtype=np.int8))


def test_to_ndarray_bytes_from_str_and_bytes() -> None:
    array = to_ndarray(tensor("BYTES", [2, 2], [["héllo", b"raw\xff"], ["", "x"]]))
    assert array.dtype == object
    assert array.shape == (2, 2)
    assert array.ravel().tolist() == ["héllo".encode(), b"raw\xff", b"", b"x"]


def test_to_ndarray_bytes_single_string() -> None:
    assert to_ndarray(tensor("BYTES", [1], "abc")).tolist() == [b"abc"]


# to_ndarray: bad data is a BadRequest that names the tensor


def bad(datatype: str, shape: list[int], data: object) -> str:
    with pytest.raises(BadRequest) as caught:
        to_ndarray(tensor(datatype, shape, data, name="features"))
    assert caught.value.status_code == 400
    assert "'features'" in caught.value.message
    return caught.value.message


def test_shape_and_data_length_mismatch() -> None:
    message = bad("FP32", [2, 2], [1.0, 2.0, 3.0])
    assert "4 elements" in message
    assert "3" in message


def test_nested_data_with_too_many_elements() -> None:
    assert "holds 2 elements" in bad("INT32", [2], [[1, 2], [3, 4]])


def test_bytes_length_mismatch() -> None:
    bad("BYTES", [3], ["a", "b"])


def test_negative_dimension() -> None:
    assert "negative" in bad("FP32", [-1, 2], [1.0, 2.0])


def test_missing_data() -> None:
    assert "no data" in bad("FP32", [1], None)


@pytest.mark.parametrize(
    ("datatype", "data", "words"),
    [
        ("FP32", ["1.0", "2.0"], "string"),
        ("FP32", [1.0, None], "FP32"),
        ("INT32", [1.5, 2.0], "integer"),
        ("INT64", [1, 2.5], "integer"),
        ("UINT8", [1.0, 2.0], "integer"),
        ("BOOL", [1, 0], "boolean"),
        ("BOOL", ["true", "false"], "boolean"),
        ("INT8", [{"a": 1}, 2], "INT8"),
    ],
)
def test_wrong_element_types(datatype: str, data: list[object], words: str) -> None:
    assert words in bad(datatype, [2], data)


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("UINT8", [0, 256]),
        ("UINT8", [-1, 3]),
        ("INT8", [128, 0]),
        ("UINT16", [65536, 0]),
        ("INT32", [2**31, 0]),
        ("UINT32", [-5, 0]),
    ],
)
def test_out_of_range_integers(datatype: str, data: list[int]) -> None:
    assert "out of range" in bad(datatype, [2], data)


@pytest.mark.parametrize(("datatype", "data"), [("INT64", [2**70, 1]), ("UINT64", [-1, 2**64 - 1])])
def test_integers_beyond_64_bits_are_rejected(datatype: str, data: list[int]) -> None:
    assert "out of range" in bad(datatype, [2], data)


def test_large_uint64_values_keep_their_precision_in_nested_data() -> None:
    array = to_ndarray(tensor("UINT64", [2, 1], [[1], [2**64 - 1]]))
    assert array.dtype == np.uint64
    assert array.ravel().tolist() == [1, 2**64 - 1]


def test_ragged_nesting() -> None:
    assert "not a regular array" in bad("INT32", [2, 2], [[1, 2], [3]])


@pytest.mark.parametrize("data", [["a", 1], [["a"], [None]], [1.5], ["ok", {"k": "v"}]])
def test_bytes_needs_strings(data: list[object]) -> None:
    assert "BYTES" in bad("BYTES", [len(data)], data)


# Pydantic validation


def request_json(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "r1",
        "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}],
    }
    body.update(overrides)
    return body


def test_inference_request_parses() -> None:
    request = InferenceRequest.model_validate(request_json())
    assert request.id == "r1"
    assert request.inputs[0].datatype is Datatype.FP32
    assert request.outputs is None
    assert request.parameters is None


def test_inference_request_from_json_bytes() -> None:
    request = InferenceRequest.model_validate_json(json.dumps(request_json(id=None)))
    assert request.id is None
    np.testing.assert_array_equal(to_ndarray(request.inputs[0]), np.array([[1.0, 2.0]], dtype=np.float32))


@pytest.mark.parametrize("datatype", ["FP8", "float32", "fp32", "STRING", ""])
def test_unknown_datatype_is_rejected(datatype: str) -> None:
    body = request_json(inputs=[{"name": "x", "shape": [1], "datatype": datatype, "data": [1]}])
    with pytest.raises(ValidationError) as caught:
        InferenceRequest.model_validate(body)
    assert caught.value.errors()[0]["loc"] == ("inputs", 0, "datatype")


@pytest.mark.parametrize("missing", ["name", "shape", "datatype"])
def test_input_missing_fields(missing: str) -> None:
    tensor_json = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}
    del tensor_json[missing]
    with pytest.raises(ValidationError) as caught:
        InferenceRequest.model_validate(request_json(inputs=[tensor_json]))
    assert caught.value.errors()[0]["loc"] == ("inputs", 0, missing)


def test_request_without_inputs_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        InferenceRequest.model_validate({"id": "1"})
    assert caught.value.errors()[0]["loc"] == ("inputs",)


def test_shape_must_be_integers() -> None:
    with pytest.raises(ValidationError):
        InferenceRequest.model_validate(
            request_json(inputs=[{"name": "x", "shape": ["two"], "datatype": "FP32", "data": [1.0]}])
        )


def test_parameters_content_type_headers_and_extra_fields() -> None:
    body = request_json(
        parameters={"content_type": "pd", "headers": {"x-a": "1"}, "custom": [1, 2], "flag": True},
        inputs=[
            {
                "name": "x",
                "shape": [1],
                "datatype": "BYTES",
                "data": ["a"],
                "parameters": {"content_type": "str", "binary_data_size": 10},
            }
        ],
        outputs=[{"name": "y", "parameters": {"binary_data": False}}],
    )
    request = InferenceRequest.model_validate(body)
    assert request.parameters is not None
    assert request.parameters.content_type == "pd"
    assert request.parameters.headers == {"x-a": "1"}
    assert request.parameters.model_extra == {"custom": [1, 2], "flag": True}
    input_parameters = request.inputs[0].parameters
    assert input_parameters is not None
    assert input_parameters.content_type == "str"
    assert input_parameters.binary_data_size == 10  # type: ignore[attr-defined]
    dumped = request.model_dump(exclude_none=True)
    assert dumped["parameters"] == {
        "content_type": "pd",
        "headers": {"x-a": "1"},
        "custom": [1, 2],
        "flag": True,
    }
    assert dumped["outputs"] == [{"name": "y", "parameters": {"binary_data": False}}]


def test_headers_must_be_strings() -> None:
    with pytest.raises(ValidationError):
        Parameters.model_validate({"headers": {"x": {"nested": 1}}})


def test_response_json_round_trip() -> None:
    response = InferenceResponse(
        model_name="m",
        model_version="2",
        id="abc",
        parameters=Parameters(content_type="np", extra_thing="kept"),  # type: ignore[call-arg]
        outputs=[
            ResponseOutput(name="a", datatype="FP64", shape=[2], data=[0.5, 1.5]),
            ResponseOutput(
                name="b",
                datatype="BYTES",
                shape=[1, 1],
                data=["text"],
                parameters=Parameters(content_type="str"),
            ),
        ],
    )
    text = response.model_dump_json(exclude_none=True)
    parsed = json.loads(text)
    assert parsed["model_name"] == "m"
    assert parsed["parameters"] == {"content_type": "np", "extra_thing": "kept"}
    assert "_ndarray" not in text
    again = InferenceResponse.model_validate_json(text)
    assert again == response
    assert to_ndarray(again.outputs[0]).tolist() == [0.5, 1.5]
    assert to_ndarray(again.outputs[1]).tolist() == [[b"text"]]


def test_response_requires_model_name_and_outputs() -> None:
    with pytest.raises(ValidationError) as caught:
        InferenceResponse.model_validate({})
    assert {error["loc"][0] for error in caught.value.errors()} == {"model_name", "outputs"}


def test_narrowing_floats_that_overflow_is_a_bad_request() -> None:
    from core.errors import BadRequest
    from core.types import RequestInput, to_ndarray

    tensor = RequestInput(name="x", shape=[2], datatype="FP16", data=[1.0, 1e10])
    with pytest.raises(BadRequest, match="out of range for FP16"):
        to_ndarray(tensor)
    infinite = RequestInput(name="y", shape=[1], datatype="FP16", data=[float("inf")])
    assert np.isinf(to_ndarray(infinite)).all()


@pytest.mark.parametrize("datatype", ["FP32", "INT64", "UINT8"])
def test_booleans_are_not_numbers(datatype: str) -> None:
    from core.types import RequestInput, to_ndarray

    with pytest.raises(BadRequest, match="got boolean"):
        to_ndarray(RequestInput(name="x", shape=[2], datatype=datatype, data=[True, False]))


@pytest.mark.parametrize(
    "parameters",
    [
        Parameters(),
        Parameters(content_type="np"),
        Parameters(headers={"a": "b"}, content_type=None),
        Parameters(headers={}),
        Parameters(content_type="np", extra_one=1, nothing=None),
        Parameters(nothing=None),
        Parameters(nested={"a": [1, 2]}),
    ],
)
def test_parameters_dict_is_model_dump_without_nones(parameters: Parameters) -> None:
    assert parameters_dict(parameters) == parameters.model_dump(exclude_none=True)


def test_model_parameters_leave_out_the_server_s_and_the_clients() -> None:
    from core.types import Parameters, model_parameters

    sent = Parameters(
        content_type="pd", headers={"a": "b"}, timeout=5, binary_data_output=True, scale=2.0, unset=None
    )
    assert model_parameters(sent) == {"scale": 2.0}
    assert model_parameters(None) == {}
