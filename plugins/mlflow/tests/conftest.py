"""Real MLflow models, saved here with MLflow (no tracking server), and real
`core start` servers for the session: in process, and with a worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import (
    Array,
    ColSpec,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    TensorSpec,
)
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from core.testing import ServerProcess


class Scaled(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """x * scale + shift, with both from the params."""

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        return np.asarray(model_input) * params.get("scale", 1.0) + params.get("shift", 0)


class Described(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """One text per row, from every kind of column: a long, an optional
    double, an array, an object, a map, a datetime and a string."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        return [
            f"{row['count']}:{row['name']}:{len(row['tags'])}:{row['point']['x']}:{sorted(row['scores'])}"
            f":{pd.Timestamp(row['when']).year}"
            for _, row in model_input.iterrows()
        ]


class Unsigned(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """No signature: the column sums of a DataFrame, or an array doubled."""

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if isinstance(model_input, pd.DataFrame):
            return model_input.sum(axis=1).to_numpy()
        return np.asarray(model_input) * 2


IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    features, labels = load_iris(return_X_y=True, as_frame=True)
    return features, labels


@pytest.fixture(scope="session")
def mlflow_models(
    tmp_path_factory: pytest.TempPathFactory, iris: tuple[pd.DataFrame, pd.Series]
) -> dict[str, Path]:
    """Saved MLflow models by name: a column signature (a scikit-learn
    classifier), a tensor signature with params, every kind of column, and
    none."""
    root = tmp_path_factory.mktemp("mlflow-models")
    features, labels = iris
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
        params=ParamSchema([ParamSpec("scale", "double", 1.0), ParamSpec("shift", "long", 0)]),
    )
    mlflow.pyfunc.save_model(
        root / "tensors", python_model=Scaled(), signature=tensors, pip_requirements=["numpy"]
    )
    described = ModelSignature(
        inputs=Schema(
            [
                ColSpec("long", "count"),
                ColSpec("double", "weight", required=False),
                ColSpec("string", "name"),
                ColSpec(Array("string"), "tags"),
                ColSpec(Object([Property("x", "double"), Property("y", "double")]), "point"),
                ColSpec(Map("long"), "scores"),
                ColSpec("datetime", "when"),
            ]
        ),
        outputs=Schema([ColSpec("string")]),
    )
    mlflow.pyfunc.save_model(
        root / "described", python_model=Described(), signature=described, pip_requirements=["pandas"]
    )
    mlflow.pyfunc.save_model(root / "unsigned", python_model=Unsigned(), pip_requirements=["numpy"])
    return {name: root / name for name in ("columns", "tensors", "described", "unsigned")}


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory, mlflow_models: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("repository")
    for name, folder in mlflow_models.items():
        (root / name).mkdir()
        settings = {"name": name, "implementation": "mlflow", "parameters": {"uri": str(folder)}}
        (root / name / "model-settings.json").write_text(json.dumps(settings))
    return root


@pytest.fixture(scope="session")
def server(repository: Path) -> Iterator[ServerProcess]:
    with ServerProcess(repository, "--parallel-workers", "0", timeout=120) as served:
        yield served


@pytest.fixture(scope="session")
def worker_server(repository: Path) -> Iterator[ServerProcess]:
    with ServerProcess(repository, "--parallel-workers", "1", timeout=120) as served:
        yield served


@pytest.fixture(params=["in-process", "worker"])
def any_server(request: pytest.FixtureRequest) -> ServerProcess:
    served: ServerProcess = request.getfixturevalue(
        "server" if request.param == "in-process" else "worker_server"
    )
    return served
