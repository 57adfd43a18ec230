"""MLflow models over V2 (REST, gRPC, tritonclient): metadata from the
signature, predictions equal to pyfunc's own, safe conversions, params, and
models without a signature."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from core.testing import ServerProcess

from .conftest import IRIS_COLUMNS


@cache
def pyfunc(folder: Path) -> Any:
    return mlflow.pyfunc.load_model(str(folder))


def column(name: str, values: list[Any], datatype: str, content_type: str | None = None) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": name, "shape": [len(values)], "datatype": datatype, "data": values}
    if content_type is not None:
        tensor["parameters"] = {"content_type": content_type}
    return tensor


def infer(server: ServerProcess, model: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def iris_body(rows: pd.DataFrame, datatype: str = "FP64") -> dict[str, Any]:
    return {"inputs": [column(name, rows[name].tolist(), datatype) for name in IRIS_COLUMNS]}


def test_metadata_comes_from_the_column_signature(server: ServerProcess) -> None:
    metadata = httpx.get(f"{server.url}/v2/models/columns").json()
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        (name, "FP64", [-1, 1]) for name in IRIS_COLUMNS
    ]
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [("predictions", "INT64")]
    assert metadata["parameters"]["signature"] == "columns"


def test_metadata_of_arrays_objects_maps_and_optional_columns(server: ServerProcess) -> None:
    metadata = httpx.get(f"{server.url}/v2/models/described").json()
    tensors = {t["name"]: t for t in metadata["inputs"]}
    assert {
        name: (t["datatype"], t.get("parameters", {}).get("content_type")) for name, t in tensors.items()
    } == {
        "count": ("INT64", None),
        "weight": ("FP64", None),
        "name": ("BYTES", "str"),
        "tags": ("BYTES", "json"),
        "point": ("BYTES", "json"),
        "scores": ("BYTES", "json"),
        "when": ("BYTES", "datetime"),
    }
    assert tensors["weight"]["parameters"]["optional"] is True
    assert tensors["tags"]["parameters"]["mlflow_type"] == "Array(string)"


def test_metadata_of_a_tensor_signature_with_params(server: ServerProcess) -> None:
    metadata = httpx.get(f"{server.url}/v2/models/tensors").json()
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        ("input-0", "FP64", [-1, 4])
    ]
    assert metadata["parameters"]["params"] == [
        {"name": "scale", "type": "double", "default": 1.0, "shape": None},
        {"name": "shift", "type": "long", "default": 0, "shape": None},
    ]


def test_column_model_predictions_equal_pyfunc_s(
    any_server: ServerProcess, mlflow_models: dict[str, Path], iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    rows = iris[0].iloc[::15]
    answer = infer(any_server, "columns", iris_body(rows))
    expected = pyfunc(mlflow_models["columns"]).predict(rows)
    assert answer["outputs"][0]["data"] == expected.tolist()


def test_int64_values_are_accepted_for_double_columns(
    server: ServerProcess, mlflow_models: dict[str, Path]
) -> None:
    # MLflow's own enforcement refuses int64 for a double column; converting it loses nothing.
    rows = pd.DataFrame([[5, 3, 1, 0], [6, 3, 5, 2]], columns=IRIS_COLUMNS)
    answer = infer(server, "columns", iris_body(rows, "INT64"))
    assert (
        answer["outputs"][0]["data"] == pyfunc(mlflow_models["columns"]).predict(rows.astype(float)).tolist()
    )


def test_tensor_model_with_params_and_their_defaults(server: ServerProcess) -> None:
    rows = [[1.0, 2.0, 3.0, 4.0]]
    body: dict[str, Any] = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": rows}]}
    assert infer(server, "tensors", body)["outputs"][0]["data"] == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]  # float32 into float64
    body["parameters"] = {"scale": 2.0, "shift": 1}
    assert infer(server, "tensors", body)["outputs"][0]["data"] == [3.0, 5.0, 7.0, 9.0]
    body["parameters"] = {"shift": 10}  # scale keeps its default
    assert infer(server, "tensors", body)["outputs"][0]["data"] == [11.0, 12.0, 13.0, 14.0]


def test_every_kind_of_column_reaches_the_model(
    server: ServerProcess, mlflow_models: dict[str, Path]
) -> None:
    frame = pd.DataFrame(
        {
            "count": [3],
            "name": ["a"],
            "tags": [["x", "y"]],
            "point": [{"x": 1.5, "y": 2.0}],
            "scores": [{"b": 2, "a": 1}],
            "when": [pd.Timestamp("2024-05-01T10:00:00")],
        }
    )
    body = {
        "inputs": [
            column("count", [3], "INT64"),
            column("name", ["a"], "BYTES", "str"),
            column("tags", [json.dumps(["x", "y"])], "BYTES", "json"),
            column("point", [json.dumps({"x": 1.5, "y": 2.0})], "BYTES", "json"),
            column("scores", [json.dumps({"b": 2, "a": 1})], "BYTES", "json"),
            column("when", ["2024-05-01T10:00:00"], "BYTES", "datetime"),
        ]
    }
    answer = infer(server, "described", body)
    assert answer["outputs"][0]["data"] == list(pyfunc(mlflow_models["described"]).predict(frame))


def test_a_model_without_a_signature_is_served_by_content_type(server: ServerProcess) -> None:
    metadata = httpx.get(f"{server.url}/v2/models/unsigned").json()
    assert (metadata["inputs"], metadata["outputs"]) == ([], [])
    assert metadata["parameters"]["signature"].startswith("none")
    frame = {"inputs": [column("a", [1.0, 2.0], "FP64"), column("b", [10.0, 20.0], "FP64")]}
    assert infer(server, "unsigned", frame)["outputs"][0]["data"] == [11.0, 22.0]  # a DataFrame: row sums
    array = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}]}
    assert infer(server, "unsigned", array)["outputs"][0]["data"] == [2, 4, 6, 8]  # an array: doubled
    one_column = {**frame, "inputs": frame["inputs"][:1], "parameters": {"content_type": "pd"}}
    assert infer(server, "unsigned", one_column)["outputs"][0]["data"] == [1.0, 2.0]


def test_tritonclient_http_binary_and_grpc(
    server: ServerProcess, mlflow_models: dict[str, Path], iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    rows = iris[0].iloc[::30]
    expected = pyfunc(mlflow_models["columns"]).predict(rows).tolist()
    for module, url in ((triton_http, server.http_port), (triton_grpc, server.grpc_port)):
        client = module.InferenceServerClient(url=f"127.0.0.1:{url}")
        tensors = []
        for name in IRIS_COLUMNS:
            tensor = module.InferInput(name, [len(rows)], "FP64")
            tensor.set_data_from_numpy(rows[name].to_numpy())
            tensors.append(tensor)
        assert client.infer("columns", tensors).as_numpy("predictions").tolist() == expected
        client.close()


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (
            "columns",
            {"inputs": [column(name, [1.0], "FP64") for name in IRIS_COLUMNS[:3]]},
            "missing column 'petal width (cm)'; the model's columns: sepal length (cm)",
        ),
        (
            "columns",
            {"inputs": [column(name, ["tall"], "BYTES") for name in IRIS_COLUMNS]},
            "column 'sepal length (cm)': cannot convert object to float64 without losing data",
        ),
        (
            "described",
            {
                "inputs": [
                    column("count", [2.5], "FP64"),
                    *[column(n, ["a"], "BYTES") for n in ("name", "tags")],
                ]
            },
            "column 'count': cannot convert float64 to int64 without losing data",
        ),
        (
            "tensors",
            {
                "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
                "parameters": {"zoom": 2},
            },
            "unknown param 'zoom'; its params: scale, shift",
        ),
        (
            "tensors",
            {
                "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
                "parameters": {"scale": "big"},
            },
            "Failed to validate type and shape for 'scale'",
        ),
        (
            "tensors",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
            "Shape of input (1, 3) does not match expected shape (-1, 4)",
        ),
        (
            "columns",
            {"inputs": [column(n, [1.0], "FP64") for n in IRIS_COLUMNS], "parameters": {"scale": 2}},
            "unknown param 'scale'; it takes no params",
        ),
        ("tensors", {"inputs": []}, "model 'tensors': the request has no inputs"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    any_server: ServerProcess, model: str, body: dict[str, Any], message: str
) -> None:
    answer = infer(any_server, model, body, status=400)
    assert message in answer["error"]
    rows = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=IRIS_COLUMNS)
    assert infer(any_server, "columns", iris_body(rows))["outputs"][0]["data"] == [0]


def test_an_mlflow_model_folder_is_served_with_no_settings_file(mlflow_models: dict[str, Path]) -> None:
    with ServerProcess(mlflow_models["tensors"], "--parallel-workers", "0", timeout=120) as server:
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
        assert infer(server, "tensors", body)["outputs"][0]["data"] == [1.0, 2.0, 3.0, 4.0]
