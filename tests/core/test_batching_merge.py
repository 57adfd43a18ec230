"""Merging requests along their first axis and splitting the answer back
(core.batching.merge and .parameters)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.batching.merge import batch_key, merge_requests, split_response
from core.batching.parameters import merge_parameters, split_parameters
from core.errors import InferenceError
from core.types import (
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    to_ndarray,
)
from core.types.raw import decode_raw, encode_raw


def request(
    rows: list[list[float]],
    name: str = "x",
    datatype: str = "FP32",
    parameters: dict[str, Any] | None = None,
    input_parameters: dict[str, Any] | None = None,
    outputs: list[RequestOutput] | None = None,
    id: str | None = None,
) -> InferenceRequest:
    shape = [len(rows), len(rows[0]) if rows else 2]
    return InferenceRequest(
        id=id,
        parameters=Parameters(**parameters) if parameters is not None else None,
        inputs=[
            RequestInput(
                name=name,
                shape=shape,
                datatype=datatype,
                data=rows,
                parameters=Parameters(**input_parameters) if input_parameters is not None else None,
            )
        ],
        outputs=outputs,
    )


# Batch keys


def test_compatible_requests_share_a_key() -> None:
    one = request([[1, 2]], parameters={"headers": {"a": "1"}, "tag": "x"})
    three_rows = request([[1, 2], [3, 4], [5, 6]], parameters={"headers": {"b": "2"}, "tag": "y"})
    assert batch_key(one) == batch_key(three_rows)
    assert batch_key(request([[1, 2]])) == batch_key(request([[3, 4]], parameters={"headers": {"h": "v"}}))


@pytest.mark.parametrize(
    "other",
    [
        request([[1, 2]], name="y"),
        request([[1, 2]], datatype="FP64"),
        request([[1, 2, 3]]),
        request([[1, 2]], parameters={"content_type": "np"}),
        request([[1, 2]], input_parameters={"content_type": "np"}),
        request([[1, 2]], parameters={"tag": "a"}),
        request([[1, 2]], input_parameters={"tag": "a"}),
        request([[1, 2]], outputs=[RequestOutput(name="y")]),
        request([[1, 2]], outputs=[]),
    ],
)
def test_requests_that_differ_do_not_share_a_key(other: InferenceRequest) -> None:
    assert batch_key(request([[1, 2]])) != batch_key(other)


def test_requested_outputs_must_match_with_their_parameters() -> None:
    def asking(*outputs: RequestOutput) -> InferenceRequest:
        return request([[1, 2]], outputs=list(outputs))

    y, z = RequestOutput(name="y"), RequestOutput(name="z")
    assert batch_key(asking(y, z)) == batch_key(asking(RequestOutput(name="y"), RequestOutput(name="z")))
    assert batch_key(asking(y, z)) != batch_key(asking(z, y))
    assert batch_key(asking(y)) != batch_key(asking(y, z))
    top = RequestOutput(name="y", parameters=Parameters(classification=2))
    assert batch_key(asking(top)) != batch_key(asking(y))
    assert batch_key(asking(top)) != batch_key(
        asking(RequestOutput(name="y", parameters=Parameters(classification=3)))
    )


def test_requests_without_a_common_first_axis_have_no_key() -> None:
    scalar = InferenceRequest(inputs=[RequestInput(name="x", shape=[], datatype="FP32", data=[1.0])])
    uneven = InferenceRequest(
        inputs=[
            RequestInput(name="x", shape=[2, 1], datatype="FP32", data=[1.0, 2.0]),
            RequestInput(name="k", shape=[1], datatype="INT32", data=[3]),
        ]
    )
    assert batch_key(scalar) is None
    assert batch_key(uneven) is None
    assert batch_key(InferenceRequest(inputs=[])) is None


# Merge


def test_merge_concatenates_rows_in_order() -> None:
    payloads = [request([[1, 2]]), request([[3, 4], [5, 6]]), request([[7, 8]])]
    merged = merge_requests(payloads)
    (tensor,) = merged.inputs
    assert tensor.shape == [4, 2]
    assert tensor.datatype == "FP32"
    assert to_ndarray(tensor).tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert to_ndarray(tensor).dtype == np.float32
    assert merged.id is None
    assert merged.outputs is None


def as_raw(payload: InferenceRequest, elements: list[Any]) -> InferenceRequest:
    """`payload` with its input's data replaced by `elements`, as they arrive
    in raw form (gRPC raw contents, REST binary extension)."""
    tensor = payload.inputs[0]
    array = np.array(elements, dtype=to_ndarray(tensor).dtype)
    tensor.data = decode_raw(tensor.name, tensor.datatype, tensor.shape, encode_raw(tensor.datatype, array))
    return payload


def test_merge_takes_raw_and_json_data_alike() -> None:
    merged = merge_requests([request([[1, 2]]), as_raw(request([[0, 0]]), [9, 8])])
    assert to_ndarray(merged.inputs[0]).tolist() == [[1, 2], [9, 8]]


def test_merge_of_bytes_inputs() -> None:
    def texts(*items: Any) -> InferenceRequest:
        return InferenceRequest(
            inputs=[RequestInput(name="t", shape=[len(items), 1], datatype="BYTES", data=list(items))]
        )

    raw = as_raw(texts("unused"), [b"\xff\x00"])
    merged = merge_requests([texts("a", "bc"), raw, texts(b"d")])
    tensor = merged.inputs[0]
    assert tensor.shape == [4, 1]
    assert tensor.data == [b"a", b"bc", b"\xff\x00", b"d"]
    assert to_ndarray(tensor).ravel().tolist() == [b"a", b"bc", b"\xff\x00", b"d"]


def test_merge_of_several_inputs_and_outputs() -> None:
    def two(value: int, rows: int) -> InferenceRequest:
        return InferenceRequest(
            inputs=[
                RequestInput(name="a", shape=[rows], datatype="INT64", data=[value] * rows),
                RequestInput(name="b", shape=[rows, 1], datatype="BOOL", data=[value % 2 == 0] * rows),
            ],
            outputs=[RequestOutput(name="out")],
        )

    merged = merge_requests([two(1, 1), two(2, 2)])
    assert [tensor.name for tensor in merged.inputs] == ["a", "b"]
    assert to_ndarray(merged.inputs[0]).tolist() == [1, 2, 2]
    assert to_ndarray(merged.inputs[1]).tolist() == [[False], [True], [True]]
    assert merged.outputs == [RequestOutput(name="out")]


# Parameters, as MLServer documents them


def test_custom_parameters_become_one_value_per_request() -> None:
    merged = merge_requests(
        [
            request([[1, 2]], parameters={"tag": "a", "content_type": "np"}, input_parameters={"w": 1}),
            request(
                [[3, 4], [5, 6]], parameters={"tag": "b", "content_type": "np"}, input_parameters={"w": 2}
            ),
        ]
    )
    assert merged.parameters == Parameters(content_type="np", tag=["a", "b"])
    assert merged.inputs[0].parameters == Parameters(w=[1, 2])


def test_batching_by_value_merges_only_equal_parameters_and_keeps_them() -> None:
    ten = request([[1, 2]], parameters={"max_new_tokens": 10, "headers": {"a": "1"}})
    also_ten = request([[3, 4]], parameters={"max_new_tokens": 10})
    twenty = request([[5, 6]], parameters={"max_new_tokens": 20})
    assert batch_key(ten) == batch_key(twenty)  # by name only
    assert batch_key(ten, by_value=True) == batch_key(also_ten, by_value=True)
    assert batch_key(ten, by_value=True) != batch_key(twenty, by_value=True)
    merged = merge_requests([ten, also_ten], by_value=True)
    assert merged.parameters == Parameters(max_new_tokens=10)
    assert merge_requests([ten, also_ten]).parameters == Parameters(max_new_tokens=[10, 10])


def test_list_values_are_kept_whole_per_request() -> None:
    merged = merge_parameters([Parameters(ids=[1, 2]), Parameters(ids=[3])])
    assert merged == Parameters(ids=[[1, 2], [3]])


def test_merged_headers_are_those_every_request_sent_alike() -> None:
    merged = merge_parameters(
        [
            Parameters(headers={"user-agent": "c", "content-length": "10", "x-a": "1"}),
            Parameters(headers={"user-agent": "c", "content-length": "12"}),
        ]
    )
    assert merged == Parameters(headers={"user-agent": "c"})
    assert merge_parameters([Parameters(headers={"a": "1"}), None]) is None
    assert merge_parameters([None, None]) is None


def test_split_parameters_by_position() -> None:
    # MLServer's documented example: lists split, the content type shared,
    # a shorter list leaves the last requests without the parameter.
    parameters = Parameters(content_type="np", foo=["foo_1", "foo_2"], bar=["bar_1", "bar_2", "bar_3"])
    assert split_parameters(parameters, 3) == [
        Parameters(content_type="np", foo="foo_1", bar="bar_1"),
        Parameters(content_type="np", foo="foo_2", bar="bar_2"),
        Parameters(content_type="np", bar="bar_3"),
    ]
    shared = Parameters(headers={"x-model": "m"}, threshold=0.5)
    assert split_parameters(shared, 2) == [shared, shared]
    assert split_parameters(None, 2) == [None, None]


# Split


def answer(outputs: list[ResponseOutput], **parameters: Any) -> InferenceResponse:
    return InferenceResponse(
        model_name="m",
        model_version="3",
        id="batch",
        parameters=Parameters(**parameters) if parameters else None,
        outputs=outputs,
    )


def test_split_gives_each_request_its_rows_and_id() -> None:
    payloads = [request([[1, 2]], id="a"), request([[3, 4], [5, 6]], id="b"), request([[7, 8]], id="c")]
    response = answer(
        [
            ResponseOutput(name="y", shape=[4, 2], datatype="FP64", data=list(range(8))),
            ResponseOutput(name="label", shape=[4], datatype="BYTES", data=["p", "q", "r", "s"]),
        ],
        content_type="np",
        row_ids=["ra", "rb", "rc"],
    )
    first, second, third = split_response("m", response, payloads)
    assert [r.id for r in (first, second, third)] == ["a", "b", "c"]
    assert {(r.model_name, r.model_version) for r in (first, second, third)} == {("m", "3")}
    assert to_ndarray(first.outputs[0]).tolist() == [[0, 1]]
    assert to_ndarray(second.outputs[0]).tolist() == [[2, 3], [4, 5]]
    assert second.outputs[0].shape == [2, 2]
    assert to_ndarray(third.outputs[0]).tolist() == [[6, 7]]
    assert [r.outputs[1].data for r in (first, second, third)] == [[b"p"], [b"q", b"r"], [b"s"]]
    assert second.parameters == Parameters(content_type="np", row_ids="rb")


def test_split_of_output_parameters() -> None:
    payloads = [request([[1, 2]]), request([[3, 4]])]
    output = ResponseOutput(
        name="y",
        shape=[2],
        datatype="INT32",
        data=[1, 2],
        parameters=Parameters(content_type="np", score=[0.1, 0.2]),
    )
    first, second = split_response("m", answer([output]), payloads)
    assert first.outputs[0].parameters == Parameters(content_type="np", score=0.1)
    assert second.outputs[0].parameters == Parameters(content_type="np", score=0.2)


@pytest.mark.parametrize(
    "output",
    [
        ResponseOutput(name="total", shape=[], datatype="FP32", data=[3.0]),
        ResponseOutput(name="total", shape=[1], datatype="FP32", data=[3.0]),
        ResponseOutput(name="total", shape=[3, 1], datatype="FP32", data=[3.0, 4.0, 5.0]),
    ],
)
def test_split_needs_the_batch_rows_on_every_output(output: ResponseOutput) -> None:
    payloads = [request([[1, 2]]), request([[3, 4]])]
    with pytest.raises(InferenceError, match=r"model 'm' returned output 'total' of shape .* 2 rows"):
        split_response("m", answer([output]), payloads)


def test_split_of_output_data_that_does_not_fit_its_shape() -> None:
    output = ResponseOutput(name="y", shape=[2, 2], datatype="FP32", data=[1.0])
    with pytest.raises(InferenceError, match="model 'm' returned output 'y'"):
        split_response("m", answer([output]), [request([[1, 2]]), request([[3, 4]])])
