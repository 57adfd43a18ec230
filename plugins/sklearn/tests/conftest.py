"""Tiny real scikit-learn models, trained here, saved the ways users save them,
and served by one real `core start` subprocess for the whole test module."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core.testing import ServerProcess, readme_examples

# Names the DataFrame model was fitted with (sklearn remembers them).
FRAME_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _write_settings(folder: Path, **settings: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-settings.json").write_text(json.dumps(settings))


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    features, labels = load_iris(return_X_y=True)
    return features, labels


@pytest.fixture(scope="session")
def estimators(iris: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    features, labels = iris
    diabetes_x, diabetes_y = load_diabetes(return_X_y=True)
    frame = pd.DataFrame(features, columns=FRAME_COLUMNS)
    return {
        "logreg": LogisticRegression(max_iter=1000).fit(features, labels),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels),
        "regressor": LinearRegression().fit(diabetes_x, diabetes_y),
        "scaler": StandardScaler().fit(features),
        "pca": PCA(n_components=2, random_state=0).fit(features),
        "pipeline": Pipeline(
            [
                ("scale", StandardScaler()),
                ("pca", PCA(n_components=3, random_state=0)),
                ("classify", LogisticRegression(max_iter=1000)),
            ]
        ).fit(features, labels),
        "frame": LogisticRegression(max_iter=1000).fit(frame, labels),
        "slow": RandomForestClassifier(n_estimators=300, random_state=0).fit(features, labels),
    }


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory: pytest.TempPathFactory, estimators: dict[str, Any]) -> Path:
    """One folder, one sub-folder per model, each artifact saved a different way."""
    root = tmp_path_factory.mktemp("models")
    full = "core_sklearn.SKLearnModel"

    # joblib, well-known name model.joblib, full import path
    _write_settings(root / "logreg", name="logreg", implementation=full)
    joblib.dump(estimators["logreg"], root / "logreg" / "model.joblib")

    # plain pickle, well-known name model.pkl, the plugin's alias
    _write_settings(root / "forest", name="forest", implementation="sklearn")
    with open(root / "forest" / "model.pkl", "wb") as file:
        pickle.dump(estimators["forest"], file)

    # plain pickle, well-known name model.pickle
    _write_settings(root / "regressor", name="regressor", implementation=full)
    with open(root / "regressor" / "model.pickle", "wb") as file:
        pickle.dump(estimators["regressor"], file)

    # an explicit parameters.uri, relative to model-settings.json, not a well-known name
    _write_settings(
        root / "scaler", name="scaler", implementation="sklearn", parameters={"uri": "./artifacts/scaler.bin"}
    )
    (root / "scaler" / "artifacts").mkdir()
    joblib.dump(estimators["scaler"], root / "scaler" / "artifacts" / "scaler.bin")

    # an explicit absolute parameters.uri to a file in another folder
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    joblib.dump(estimators["pca"], elsewhere / "pca-model.joblib")
    _write_settings(
        root / "pca", name="pca", implementation=full, parameters={"uri": str(elsewhere / "pca-model.joblib")}
    )

    for name in ("pipeline", "frame", "slow"):
        _write_settings(root / name, name=name, implementation="sklearn")
        joblib.dump(estimators[name], root / name / "model.joblib")

    # the pd codec chosen by model-settings.json rather than by the request
    _write_settings(
        root / "frame-pd", name="frame-pd", implementation="sklearn", parameters={"content_type": "pd"}
    )
    joblib.dump(estimators["frame"], root / "frame-pd" / "model.joblib")

    # the model-settings.json shown in the plugin's README, verbatim
    (root / "readme").mkdir()
    (root / "readme" / "model-settings.json").write_text(readme_snippets()["settings"])
    joblib.dump(estimators["logreg"], root / "readme" / "model.joblib")
    return root


def readme_snippets() -> dict[str, str]:
    return readme_examples(Path(__file__).parents[1] / "README.md")


@pytest.fixture(scope="session")
def readme() -> dict[str, str]:
    return readme_snippets()


@pytest.fixture(scope="module")
def server(model_folder: Path) -> Iterator[ServerProcess]:
    with ServerProcess(model_folder) as process:
        yield process
    assert process.process is not None and process.process.returncode is not None


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array)
    datatype = {"f": "FP64", "i": "INT64"}[array.dtype.kind]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


@pytest.fixture(scope="session")
def infer() -> Callable[..., httpx.Response]:
    """POST one numpy array as a single-input request, optionally naming outputs."""

    def post(
        http: httpx.Client, model: str, features: np.ndarray, outputs: list[str] | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"inputs": [tensor("input-0", features)]}
        if outputs is not None:
            body["outputs"] = [{"name": name} for name in outputs]
        return http.post(f"/v2/models/{model}/infer", json=body)

    return post


def outputs_of(response: httpx.Response) -> dict[str, np.ndarray]:
    assert response.status_code == 200, response.text
    return {
        output["name"]: np.asarray(output["data"]).reshape(output["shape"])
        for output in response.json()["outputs"]
    }


@pytest.fixture(scope="session")
def decode() -> Callable[[httpx.Response], dict[str, np.ndarray]]:
    """A 200 response's outputs as arrays of their declared shapes, by name."""
    return outputs_of
