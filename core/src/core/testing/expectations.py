"""How the conformance kit (`core.testing.conformance`) compares what a
server answers with what the runtime's author expects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..types import to_datatype


def check_answer(
    answer: Any,
    expected: Mapping[str, np.ndarray],
    names: Sequence[str],
    where: str,
    rtol: float,
    atol: float,
) -> None:
    """`answer` (a core.client InferResponse) holds exactly the outputs
    `names`, in that order, each with the datatype of its `expected` array's
    dtype and its values (`check_array`)."""
    answered = [output.name for output in answer.outputs]
    assert answered == list(names), f"{where}: outputs {answered}, expected {list(names)}"
    for output in answer.outputs:
        wanted = expected[output.name]
        datatype = to_datatype(wanted.dtype).value
        assert output.datatype == datatype, (
            f"{where}: output {output.name!r} is {output.datatype}, expected {datatype}"
        )
        check_array(output.as_numpy(), wanted, f"{where}: {output.name}", rtol, atol)


def check_array(actual: Any, wanted: np.ndarray, where: str, rtol: float, atol: float) -> None:
    """The same shape and values: numbers within `rtol` / `atol`, anything
    else equal (bytes and str alike)."""
    actual = np.asarray(actual)
    assert actual.shape == wanted.shape, f"{where}: shape {actual.shape}, expected {wanted.shape}"
    if wanted.dtype.kind in "biufc":
        np.testing.assert_allclose(actual, wanted, rtol=rtol, atol=atol, err_msg=where)
    else:
        np.testing.assert_array_equal(_texts(actual), _texts(wanted), err_msg=where)


def declared_tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    """A tensor's metadata for model-settings.json: any number of rows of
    `values`' other dimensions, its datatype."""
    return {"name": name, "datatype": to_datatype(values.dtype).value, "shape": [-1, *values.shape[1:]]}


def described_tensor(tensor: Any) -> dict[str, Any]:
    """A metadata tensor as answered (core.types.MetadataTensor), in the form
    of `declared_tensor`."""
    return {
        "name": tensor.name,
        "datatype": str(getattr(tensor.datatype, "value", tensor.datatype)),
        "shape": list(tensor.shape),
    }


def _texts(values: Any) -> Any:
    """Bytes as str, elementwise: BYTES come back as bytes, strings go as str."""
    if isinstance(values, bytes):
        return values.decode()
    if isinstance(values, np.ndarray) and values.dtype.kind in "OSU":
        return np.vectorize(_texts, otypes=[object])(values)
    return values
