"""MLflow's scoring protocol (`/invocations`, `/ping`, `/health`,
`/version`) on real `core start` servers: predictions equal to pyfunc's own
and to MLflow's scoring server's for every body format, MLflow's error
shape for bad input, and the model chosen by route."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import scoring_server
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from core.testing import ServerProcess

JSON = "application/json"
CSV = "text/csv"


class Scaled(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """The input times the `scale` param."""

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return np.asarray(model_input) * (params or {}).get("scale", 1.0)


class Unsigned(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """No signature: a DataFrame answered with a DataFrame, a dict with a
    dict, anything else as an array, doubled."""

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if isinstance(model_input, pd.DataFrame):
            return pd.DataFrame({"total": model_input.sum(axis=1), "first": model_input.iloc[:, 0]})
        if isinstance(model_input, dict):
            return {name: np.asarray(value) * 2 for name, value in model_input.items()}
        return np.asarray(model_input) * 2


def _settings(folder: Path, name: str, implementation: str, uri: Path, **parameters: Any) -> None:
    (folder / name).mkdir()
    settings = {"name": name, "implementation": implementation, "parameters": {"uri": str(uri), **parameters}}
    (folder / name / "model-settings.json").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def invocations_iris() -> pd.DataFrame:
    features, labels = load_iris(return_X_y=True, as_frame=True)
    features["label"] = labels
    return features


@pytest.fixture(scope="module")
def invocations_models(
    tmp_path_factory: pytest.TempPathFactory, invocations_iris: pd.DataFrame
) -> dict[str, Path]:
    """MLflow model folders by name: a column signature (scikit-learn on
    iris), a tensor signature with params, no signature; and a joblib model
    (not MLflow)."""
    root = tmp_path_factory.mktemp("invocations-mlflow")
    features, labels = invocations_iris.drop(columns="label"), invocations_iris["label"]
    classifier = LogisticRegression(max_iter=500).fit(features, labels)
    mlflow.sklearn.save_model(
        classifier,
        root / "columns",
        signature=infer_signature(features, classifier.predict(features)),
        pip_requirements=["scikit-learn"],
    )
    tensors = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 4))]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 4))]),
        params=ParamSchema([ParamSpec("scale", "double", 1.0)]),
    )
    mlflow.pyfunc.save_model(
        root / "tensors", python_model=Scaled(), signature=tensors, pip_requirements=["numpy"]
    )
    mlflow.pyfunc.save_model(root / "unsigned", python_model=Unsigned(), pip_requirements=["numpy"])
    joblib.dump(classifier, root / "model.joblib")
    return {"columns": root / "columns", "tensors": root / "tensors", "unsigned": root / "unsigned"}


def _repository(folder: Path, models: dict[str, Path]) -> Path:
    """Three MLflow models; `columns` as version 1."""
    for name, uri in models.items():
        _settings(folder, name, "mlflow", uri, **({"version": "1"} if name == "columns" else {}))
    return folder


def _worker_repository(folder: Path, models: dict[str, Path]) -> Path:
    """One MLflow model, a scikit-learn one (not MLflow) and a broken MLflow
    model, which never gets ready (nor, then, the server)."""
    _settings(folder, "iris", "core_mlflow.MLflowModel", models["columns"])
    _settings(folder, "plain", "sklearn", models["columns"].parent / "model.joblib")
    broken = folder / "broken-model"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {}\n")
    _settings(folder, "broken", "mlflow", broken)
    return folder


def _start_worker_server(server: ServerProcess) -> ServerProcess:
    server.start()
    deadline = time.monotonic() + 120
    while not all(_ready(server, name) for name in ("iris", "plain")):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    return server


@pytest.fixture(scope="module")
def invocations_servers(
    tmp_path_factory: pytest.TempPathFactory, invocations_models: dict[str, Path]
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """The module's two servers, started and stopped side by side: the models
    in the server process, and (another repository) in a worker process."""
    in_process = ServerProcess(
        _repository(tmp_path_factory.mktemp("invocations-repository"), invocations_models),
        "--parallel-workers", "0", timeout=120,
    )  # fmt: skip
    worker = ServerProcess(
        _worker_repository(tmp_path_factory.mktemp("invocations-worker-repository"), invocations_models),
        "--parallel-workers", "1", wait_for="/v2/health/live", timeout=120,
    )  # fmt: skip
    with ThreadPoolExecutor(2) as threads:
        try:
            started = [threads.submit(in_process.start), threads.submit(_start_worker_server, worker)]
            for future in started:
                future.result()
            yield in_process, worker
        finally:
            list(threads.map(ServerProcess.stop, (in_process, worker)))


@pytest.fixture
def invocations_server(invocations_servers: tuple[ServerProcess, ServerProcess]) -> ServerProcess:
    return invocations_servers[0]


@pytest.fixture
def invocations_worker_server(invocations_servers: tuple[ServerProcess, ServerProcess]) -> ServerProcess:
    return invocations_servers[1]


def _ready(server: ServerProcess, name: str) -> bool:
    return httpx.get(f"{server.url}/v2/models/{name}/ready", timeout=5).status_code == 200


# Helpers


@cache
def pyfunc(folder: Path) -> Any:
    return mlflow.pyfunc.load_model(str(folder))


def post(server: ServerProcess, path: str, body: Any, content_type: str | None = JSON) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return httpx.post(server.url + path, content=content, headers=headers, timeout=30)


def served(server: ServerProcess, path: str, body: Any, content_type: str = JSON) -> Any:
    response = post(server, path, body, content_type)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON
    return response.json()["predictions"]


def as_mlflow_writes(prediction: Any) -> Any:
    """A prediction as MLflow's scoring server writes it, read back."""
    written = io.StringIO()
    scoring_server.predictions_to_json(prediction, written)
    return json.loads(written.getvalue())["predictions"]


def mlflow_answer(folder: Path, body: Any, content_type: str = JSON) -> Any:
    """What MLflow's own scoring server answers `body` (its request handling, without HTTP)."""
    model = pyfunc(folder)
    content = body if isinstance(body, str) else json.dumps(body)
    result = scoring_server.invocations(content, content_type, model, model.metadata.get_input_schema())
    assert result.status == 200, result.response
    return json.loads(result.response)["predictions"]


def rows(iris: pd.DataFrame) -> pd.DataFrame:
    """Ten rows of iris, of all three classes."""
    return iris.drop(columns="label").iloc[::15].reset_index(drop=True)


def iris_bodies(frame: pd.DataFrame) -> dict[str, tuple[Any, str]]:
    """The same rows in every format of `/invocations`, with their content types."""
    return {
        "dataframe_split": ({"dataframe_split": json.loads(frame.to_json(orient="split"))}, JSON),
        "dataframe_records": ({"dataframe_records": frame.to_dict(orient="records")}, JSON),
        "instances": ({"instances": frame.to_dict(orient="records")}, JSON),
        "inputs": ({"inputs": frame.to_dict(orient="list")}, JSON),
        "csv": (frame.to_csv(index=False), CSV),
    }


# Predictions


@pytest.mark.parametrize("form", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"])
def test_column_model_answers_every_format_as_pyfunc(
    invocations_server: ServerProcess,
    invocations_models: dict[str, Path],
    invocations_iris: pd.DataFrame,
    form: str,
) -> None:
    frame = rows(invocations_iris)
    body, content_type = iris_bodies(frame)[form]
    predictions = served(invocations_server, "/v2/models/columns/invocations", body, content_type)
    folder = invocations_models["columns"]
    assert predictions == as_mlflow_writes(pyfunc(folder).predict(frame))
    assert predictions == mlflow_answer(folder, body, content_type)
    assert len(set(predictions)) == 3


def test_tensor_model_takes_inputs_instances_and_params(
    invocations_server: ServerProcess, invocations_models: dict[str, Path], invocations_iris: pd.DataFrame
) -> None:
    array = rows(invocations_iris).to_numpy()
    model = pyfunc(invocations_models["tensors"])
    path = "/v2/models/tensors/invocations"
    for key in ("inputs", "instances"):
        body = {key: array.tolist()}
        assert served(invocations_server, path, body) == as_mlflow_writes(model.predict(array))
        assert served(invocations_server, path, body) == mlflow_answer(invocations_models["tensors"], body)
    body = {"inputs": array.tolist(), "params": {"scale": 2.5}}
    expected = as_mlflow_writes(model.predict(array, params={"scale": 2.5}))
    assert served(invocations_server, path, body) == expected
    assert expected == mlflow_answer(invocations_models["tensors"], body)
    assert expected != as_mlflow_writes(model.predict(array))


def test_model_without_signature_answers_arrays_dicts_and_dataframes(
    invocations_server: ServerProcess, invocations_models: dict[str, Path]
) -> None:
    folder = invocations_models["unsigned"]
    model = pyfunc(folder)
    path = "/v2/models/unsigned/invocations"
    array = [[1.5, 2.0], [3.0, 4.25]]
    columns = {"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}
    frame = pd.DataFrame(columns)
    cases = [
        ({"inputs": array}, model.predict(np.asarray(array))),  # a list: one array
        ({"inputs": columns}, model.predict({name: np.asarray(v) for name, v in columns.items()})),  # a dict
        (
            {"instances": frame.to_dict(orient="records")},
            model.predict({n: np.asarray(v) for n, v in columns.items()}),
        ),
        (
            {"dataframe_split": json.loads(frame.to_json(orient="split"))},
            model.predict(frame),
        ),  # DataFrame out
    ]
    for body, prediction in cases:
        expected = as_mlflow_writes(prediction)
        assert served(invocations_server, path, body) == expected
        assert mlflow_answer(folder, body) == expected
    # A DataFrame prediction comes as records; a dict as a dict of lists.
    assert served(invocations_server, path, cases[3][0])[0] == {"total": 1.5, "first": 1}
    assert served(invocations_server, path, cases[1][0]) == {"a": [2, 4, 6], "b": [1.0, 3.0, 5.0]}


def test_nan_and_infinity_are_read_as_mlflow_reads_them(
    invocations_server: ServerProcess, invocations_models: dict[str, Path]
) -> None:
    # MLflow's clients write them (Python's json does); its server reads them, and
    # writes them back bare (not JSON): here they come back as null.
    body = '{"inputs": [1.5, NaN, -Infinity]}'
    content_type = "application/json; charset=utf-8"
    assert mlflow_answer(invocations_models["unsigned"], body)[0] == 3.0
    assert served(invocations_server, "/v2/models/unsigned/invocations", body, content_type) == [
        3.0,
        None,
        None,
    ]


def test_int64_values_into_double_columns_are_accepted(
    invocations_server: ServerProcess, invocations_models: dict[str, Path], invocations_iris: pd.DataFrame
) -> None:
    integers = (rows(invocations_iris) * 10).round().astype("int64")
    model = pyfunc(invocations_models["columns"])
    with pytest.raises(MlflowException):  # pyfunc itself refuses them: int64 is no double
        model.predict(integers)
    expected = as_mlflow_writes(model.predict(integers.astype("float64")))
    for body, content_type in iris_bodies(integers).values():
        assert served(invocations_server, "/v2/models/columns/invocations", body, content_type) == expected


def test_large_requests_and_answers(
    invocations_server: ServerProcess, invocations_models: dict[str, Path]
) -> None:
    # Over the sizes parsed and written inline: read and written in threads.
    array = np.random.default_rng(0).normal(size=(6000, 4))
    body = {"inputs": array.tolist(), "params": {"scale": 0.5}}
    expected = as_mlflow_writes(pyfunc(invocations_models["tensors"]).predict(array, params={"scale": 0.5}))
    assert served(invocations_server, "/v2/models/tensors/invocations", body) == expected


def test_a_version_is_chosen_by_route(
    invocations_server: ServerProcess, invocations_models: dict[str, Path], invocations_iris: pd.DataFrame
) -> None:
    frame = rows(invocations_iris)
    body, _ = iris_bodies(frame)["dataframe_split"]
    expected = as_mlflow_writes(pyfunc(invocations_models["columns"]).predict(frame))
    assert served(invocations_server, "/v2/models/columns/versions/1/invocations", body) == expected
    response = post(invocations_server, "/v2/models/columns/versions/7/invocations", body)
    assert response.status_code == 404
    assert response.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "model 'columns' version '7' not found",
    }


def test_parquet_bodies(
    invocations_server: ServerProcess, invocations_models: dict[str, Path], invocations_iris: pd.DataFrame
) -> None:
    frame = rows(invocations_iris)
    path = "/v2/models/columns/invocations"
    if importlib.util.find_spec("pyarrow") is None:
        response = post(invocations_server, path, b"PAR1", "application/vnd.apache.parquet")
        assert response.status_code == 415
        assert "pyarrow" in response.json()["message"]
        return
    body = frame.to_parquet()
    expected = as_mlflow_writes(pyfunc(invocations_models["columns"]).predict(frame))
    assert served(invocations_server, path, body, "application/vnd.apache.parquet") == expected


# Errors

SPLIT = {"columns": ["a", "b"], "data": [[1, 2]]}
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]

BAD_INPUT = {
    "missing column": (
        "columns",
        {"dataframe_split": {"columns": IRIS_COLUMNS[:3], "data": [IRIS_ROW[:3]]}},
        JSON,
        400,
        "missing column 'petal width (cm)'",
    ),
    "string in a double column": (
        "columns",
        {"dataframe_records": [dict(zip(IRIS_COLUMNS, ["wide", 3.5, 1.4, 0.2], strict=True))]},
        JSON,
        400,
        "column 'sepal length (cm)'",
    ),
    "string in a double column of CSV": (
        "columns",
        ",".join(IRIS_COLUMNS) + "\nwide,3.5,1.4,0.2\n",
        CSV,
        400,
        "column 'sepal length (cm)'",
    ),
    "malformed CSV": ("unsigned", 'a,b\n1,"2\n', CSV, 400, "cannot read the body as a CSV DataFrame"),
    "empty CSV": ("unsigned", "", CSV, 400, "cannot read the body as a CSV DataFrame"),
    "malformed JSON": ("unsigned", '{"inputs": [1, 2', JSON, 400, "malformed JSON"),
    "a JSON list": ("unsigned", [[1, 2]], JSON, 400, "a JSON object with exactly one of the keys"),
    "unknown format key": ("unsigned", {"data": [[1, 2]]}, JSON, 400, "got the keys data"),
    "two format keys": (
        "unsigned",
        {"inputs": [1], "instances": [1]},
        JSON,
        400,
        "exactly one of the keys dataframe_split",
    ),
    "split without data": (
        "unsigned",
        {"dataframe_split": {"columns": ["a"]}},
        JSON,
        400,
        "takes the fields",
    ),
    "split of the wrong shape": (
        "unsigned",
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2]]}},
        JSON,
        400,
        "'split' orient",
    ),
    "records not a list": (
        "unsigned",
        {"dataframe_records": {"a": 1}},
        JSON,
        400,
        "must be a list of records",
    ),
    "duplicate columns": (
        "unsigned",
        {"dataframe_split": {**SPLIT, "columns": ["a", "a"]}},
        JSON,
        400,
        "more than once",
    ),
    "instances of different keys": (
        "unsigned",
        {"instances": [{"a": 1, "b": 2}, {"a": 3}]},
        JSON,
        400,
        "do not all have the same keys",
    ),
    "a null tensor": ("unsigned", {"inputs": None}, JSON, 400, "tensor 'input-0' is null"),
    "unsupported content type": (
        "unsigned",
        "a,b\n1,2\n",
        "text/plain",
        415,
        "Content-Type 'text/plain' is not supported",
    ),
    "no content type": ("unsigned", b"a,b\n1,2\n", None, 415, "no Content-Type header"),
    "another charset": ("unsigned", "a,b\n1,2\n", "text/csv; charset=latin-1", 415, "only supports UTF-8"),
    "MLflow 1 format parameter": (
        "unsigned",
        {"dataframe_split": SPLIT},
        "application/json; format=pandas-split",
        415,
        "format",
    ),
    "unknown param": (
        "tensors",
        {"inputs": [IRIS_ROW], "params": {"bogus": 1}},
        JSON,
        400,
        "unknown param 'bogus'",
    ),
    "param of a model without params": (
        "columns",
        {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [IRIS_ROW]}, "params": {"scale": 2}},
        JSON,
        400,
        "it takes no params",
    ),
    "param of the wrong type": (
        "tensors",
        {"inputs": [IRIS_ROW], "params": {"scale": "big"}},
        JSON,
        400,
        "scale",
    ),
    "params not an object": ("tensors", {"inputs": [IRIS_ROW], "params": [1]}, JSON, 400, "'params' must be"),
    "param core reads": (
        "tensors",
        {"inputs": [IRIS_ROW], "params": {"timeout": 1}},
        JSON,
        400,
        "param 'timeout'",
    ),
    "wrong tensor shape": ("tensors", {"inputs": [[1.0, 2.0]]}, JSON, 400, "model 'tensors'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_a_4xx_in_mlflow_shape(invocations_server: ServerProcess, case: str) -> None:
    model, body, content_type, status, words = BAD_INPUT[case]
    response = post(invocations_server, f"/v2/models/{model}/invocations", body, content_type)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] == "BAD_REQUEST"
    assert words in error["message"]
    assert "Traceback" not in error["message"]
    # And the server serves on.
    assert invocations_server.alive()
    assert served(invocations_server, "/v2/models/unsigned/invocations", {"inputs": [1, 2]}) == [2, 4]


def test_unknown_model_is_a_404(invocations_server: ServerProcess) -> None:
    response = post(invocations_server, "/v2/models/nowhere/invocations", {"inputs": [1]})
    assert response.status_code == 404
    assert response.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "model 'nowhere' not found",
    }


def test_plain_invocations_with_several_models_names_them(invocations_server: ServerProcess) -> None:
    response = post(invocations_server, "/invocations", {"inputs": [1]})
    assert response.status_code == 400
    error = response.json()
    assert error["error_code"] == "BAD_REQUEST"
    assert "several MLflow models are served (columns, tensors, unsigned)" in error["message"]
    assert "/v2/models/<name>/invocations" in error["message"]


def test_a_ragged_tensor_is_a_400(invocations_server: ServerProcess) -> None:
    response = post(invocations_server, "/v2/models/tensors/invocations", {"inputs": [[1.0, 2.0], [3.0]]})
    assert response.status_code == 400, response.text


def test_tensor_model_takes_a_dataframe(
    invocations_server: ServerProcess, invocations_models: dict[str, Path], invocations_iris: pd.DataFrame
) -> None:
    frame = rows(invocations_iris)
    body = {"dataframe_split": json.loads(frame.to_json(orient="split"))}
    expected = mlflow_answer(invocations_models["tensors"], body)
    assert served(invocations_server, "/v2/models/tensors/invocations", body) == expected


# Health and version


def test_ping_health_and_version(invocations_server: ServerProcess) -> None:
    for path in ("/ping", "/health"):
        response = httpx.get(invocations_server.url + path)
        assert (response.status_code, response.text) == (200, "\n")
    response = httpx.get(invocations_server.url + "/version")
    assert response.status_code == 200
    assert response.text == importlib.metadata.version("mlflow-skinny") == mlflow.__version__


# With a worker process


def test_plain_invocations_serve_the_only_mlflow_model_from_a_worker(
    invocations_worker_server: ServerProcess,
    invocations_models: dict[str, Path],
    invocations_iris: pd.DataFrame,
) -> None:
    frame = rows(invocations_iris)
    expected = as_mlflow_writes(pyfunc(invocations_models["columns"]).predict(frame))
    for body, content_type in iris_bodies(frame).values():
        assert served(invocations_worker_server, "/invocations", body, content_type) == expected
    body, _ = iris_bodies(frame)["dataframe_split"]
    assert served(invocations_worker_server, "/v2/models/iris/invocations", body) == expected
    # Any model by name: here scikit-learn's own, not MLflow's, on the same classifier.
    assert (
        served(
            invocations_worker_server, "/v2/models/plain/invocations", {"inputs": frame.to_numpy().tolist()}
        )
        == expected
    )
    missing = {"dataframe_split": {"columns": IRIS_COLUMNS[:3], "data": [IRIS_ROW[:3]]}}
    response = post(invocations_worker_server, "/invocations", missing)
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert "missing column 'petal width (cm)'" in response.json()["message"]


def test_ping_fails_while_a_model_is_not_ready(invocations_worker_server: ServerProcess) -> None:
    # MLflow answers a model it cannot serve with 404 and a newline.
    for path in ("/ping", "/health"):
        response = httpx.get(invocations_worker_server.url + path)
        assert (response.status_code, response.text) == (404, "\n")
    assert httpx.get(invocations_worker_server.url + "/version").text == mlflow.__version__
