"""The bad requests of the conformance kit (`core.testing.conformance`):
each must be refused with a 4xx naming the problem, and the server must
serve on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from ..types import Datatype, to_datatype

BAD_INPUTS = (
    "unknown-datatype",  # a datatype the protocol does not have
    "wrong-datatype",  # elements of another kind than the datatype says
    "shape-mismatch",  # a shape that says more elements than are sent
    "feature-count",  # the rows without their last column
    "unknown-input",  # an input the model does not take, next to the right one
    "bytes-for-numbers",  # BYTES that are not numbers, in place of the rows
    "unknown-output",  # an output the model does not have, next to one it has
)
# The bad inputs core.client can send over gRPC (the others are malformed
# tensors a client does not build).
GRPC_BAD_INPUTS = ("feature-count", "unknown-input", "bytes-for-numbers", "unknown-output")
UNKNOWN_INPUT = "no-such-input"
UNKNOWN_OUTPUT = "no-such-output"


def bad_json_body(case: str, input_name: str, rows: np.ndarray, outputs: Sequence[str]) -> dict[str, Any]:
    """The JSON body of bad-input `case`, built from a good request: `rows`
    as input `input_name`, asking for `outputs`."""
    good = json_tensor(input_name, rows)
    inputs, asked = [good], list(outputs)
    if case == "unknown-datatype":
        inputs = [{**good, "datatype": "FP65"}]
    elif case == "wrong-datatype":
        element = 1.5 if good["datatype"] in (Datatype.BYTES.value, Datatype.BOOL.value) else "1.5"
        inputs = [{**good, "data": [element] * rows.size}]
    elif case == "shape-mismatch":
        inputs = [{**good, "shape": [len(rows) + 1, *rows.shape[1:]]}]
    elif case in ("feature-count", "unknown-input", "bytes-for-numbers", "unknown-output"):
        tensors, asked = bad_inputs(case, input_name, rows, outputs)
        inputs = [json_tensor(name, array) for name, array in tensors.items()]
    else:
        raise ValueError(f"no bad input {case!r}; they are {', '.join(BAD_INPUTS)}")
    return {"inputs": inputs, "outputs": [{"name": name} for name in asked]}


def bad_inputs(
    case: str, input_name: str, rows: np.ndarray, outputs: Sequence[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The input arrays by name and the outputs to ask for of a bad-input
    `case` any client can send (`GRPC_BAD_INPUTS`)."""
    inputs, asked = {input_name: rows}, list(outputs)
    if case == "feature-count":
        if rows.ndim != 2 or rows.shape[1] < 2:
            pytest.skip(f"feature-count: rows() are not rows x features (shape {rows.shape})")
        inputs = {input_name: np.ascontiguousarray(rows[:, :-1])}
    elif case == "unknown-input":
        inputs[UNKNOWN_INPUT] = rows
    elif case == "bytes-for-numbers":
        if to_datatype(rows.dtype) is Datatype.BYTES:
            pytest.skip("bytes-for-numbers: the model takes BYTES")
        inputs = {input_name: np.full(rows.shape, b"not-a-number", dtype=object)}
    elif case == "unknown-output":
        # Next to a known one: no partial answer either.
        asked = [asked[0], UNKNOWN_OUTPUT]
    else:
        raise ValueError(f"no bad input {case!r} for every client; they are {', '.join(GRPC_BAD_INPUTS)}")
    return inputs, asked


def check_error_message(case: str, error: str, outputs: Sequence[str], messages: Mapping[str, str]) -> None:
    """The error of `case` holds `messages[case]` if given; for an unknown
    output, it names that output and the model's `outputs`."""
    if case in messages:
        assert messages[case] in error, (case, error)
    if case == "unknown-output":
        for name in [UNKNOWN_OUTPUT, *outputs]:
            assert name in error, (case, error)


def json_tensor(name: str, rows: np.ndarray) -> dict[str, Any]:
    """`rows` as an OIP JSON tensor (BYTES as strings)."""
    datatype = to_datatype(rows.dtype).value
    data = rows.ravel().tolist()
    if datatype == Datatype.BYTES.value:
        data = [item.decode() if isinstance(item, bytes) else item for item in data]
    return {"name": name, "shape": list(rows.shape), "datatype": datatype, "data": data}
