"""core-sklearn served by a real `core start` process, called over REST with
httpx, and compared with what scikit-learn itself answers: the ways users
save estimators, and what differs between them (regressors, transformers,
DataFrames). What every runtime must do (every transport, metadata, bad
input, batching, workers) is core's conformance kit, in test_conformance.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from core.testing import ServerProcess, check_live_during, check_readme_example

Infer = Callable[..., httpx.Response]
Decode = Callable[[httpx.Response], dict[str, np.ndarray]]

# Rows of the slow request: a 300-tree forest predicts them in roughly 1-2 s on
# one core. Only the order of events is asserted, never a duration.
SLOW_ROWS = 100_000


@pytest.fixture(scope="module")
def features(iris: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    # Every 7th flower: all three classes, a small request.
    return iris[0][::7]


def test_every_model_is_ready(client: httpx.Client) -> None:
    index = client.post("/v2/repository/index", json={}).json()
    states = {item["name"]: item["state"] for item in index}
    assert states == {
        name: "READY"
        for name in (
            "logreg",
            "forest",
            "regressor",
            "scaler",
            "pca",
            "pipeline",
            "frame",
            "frame-pd",
            "slow",
            "iris",
        )
    }, index


@pytest.mark.parametrize("model", ["logreg", "forest"])
def test_predict_is_the_default_output(
    client: httpx.Client,
    infer: Infer,
    decode: Decode,
    estimators: dict[str, Any],
    features: np.ndarray,
    model: str,
) -> None:
    outputs = decode(infer(client, model, features))
    assert list(outputs) == ["predict"]
    expected = estimators[model].predict(features)
    np.testing.assert_array_equal(outputs["predict"].ravel(), expected)


def test_predict_of_a_regressor(
    client: httpx.Client, infer: Infer, decode: Decode, estimators: dict[str, Any]
) -> None:
    features = load_diabetes(return_X_y=True)[0][:20]
    outputs = decode(infer(client, "regressor", features))
    assert list(outputs) == ["predict"]
    np.testing.assert_allclose(outputs["predict"].ravel(), estimators["regressor"].predict(features))


@pytest.mark.parametrize("model", ["logreg", "forest"])
def test_predict_proba_on_request(
    client: httpx.Client,
    infer: Infer,
    decode: Decode,
    estimators: dict[str, Any],
    features: np.ndarray,
    model: str,
) -> None:
    outputs = decode(infer(client, model, features, outputs=["predict_proba"]))
    assert list(outputs) == ["predict_proba"]
    expected = estimators[model].predict_proba(features)
    assert outputs["predict_proba"].shape == expected.shape
    np.testing.assert_allclose(outputs["predict_proba"], expected)


@pytest.mark.parametrize("model", ["scaler", "pca"])
def test_transform_of_a_transformer(
    client: httpx.Client,
    infer: Infer,
    decode: Decode,
    estimators: dict[str, Any],
    features: np.ndarray,
    model: str,
) -> None:
    """A transformer has no predict: transform is its default output, and can be named."""
    expected = estimators[model].transform(features)
    default = decode(infer(client, model, features))
    named = decode(infer(client, model, features, outputs=["transform"]))
    assert list(default) == list(named) == ["transform"]
    for outputs in (default, named):
        assert outputs["transform"].shape == expected.shape
        np.testing.assert_allclose(outputs["transform"], expected)


def test_dataframe_request_for_a_model_fitted_on_named_columns(
    client: httpx.Client, decode: Decode, estimators: dict[str, Any], features: np.ndarray
) -> None:
    import pandas as pd

    model = estimators["frame"]
    columns = [str(name) for name in model.feature_names_in_]
    assert columns == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame = pd.DataFrame(features, columns=columns)
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": column, "shape": [len(frame), 1], "datatype": "FP64", "data": frame[column].tolist()}
            for column in columns
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    outputs = decode(client.post("/v2/models/frame/infer", json=body))
    np.testing.assert_array_equal(outputs["predict"].ravel(), model.predict(frame))
    np.testing.assert_allclose(outputs["predict_proba"], model.predict_proba(frame))


def test_dataframe_content_type_from_model_settings(
    client: httpx.Client, decode: Decode, estimators: dict[str, Any], features: np.ndarray
) -> None:
    """`parameters.content_type: pd` in model-settings.json: the request need not say it."""
    import pandas as pd

    model = estimators["frame"]
    frame = pd.DataFrame(features, columns=model.feature_names_in_)
    body = {
        "inputs": [
            {"name": str(column), "shape": [len(frame)], "datatype": "FP64", "data": frame[column].tolist()}
            for column in frame.columns
        ]
    }
    outputs = decode(client.post("/v2/models/frame-pd/infer", json=body))
    np.testing.assert_array_equal(outputs["predict"].ravel(), model.predict(frame))


def test_readme_example(server: ServerProcess, estimators: dict[str, Any], readme: dict[str, str]) -> None:
    """The README's model-settings.json (served verbatim) answers the README's request."""
    check_readme_example(server, readme, estimators["logreg"])


def test_transform_of_a_classifier_pipeline_is_a_400(
    client: httpx.Client, infer: Infer, features: np.ndarray
) -> None:
    response = infer(client, "pipeline", features, outputs=["transform"])
    assert response.status_code == 400, response.text
    assert "available outputs: predict, predict_proba" in response.json()["error"]


def test_predict_proba_of_a_regressor_is_a_400(client: httpx.Client, infer: Infer) -> None:
    features = load_diabetes(return_X_y=True)[0][:3]
    response = infer(client, "regressor", features, outputs=["predict_proba"])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "predict_proba" in error
    assert "available outputs: predict" in error


# The slow-model check: a CPU-bound predict must not stall the event loop.


@pytest.fixture
def slow_request(iris: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, bytes]:
    features = iris[0]
    rows = np.random.default_rng(0).uniform(features.min(0), features.max(0), size=(SLOW_ROWS, 4)).round(2)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    ).encode()
    return rows, body


def test_slow_predict_does_not_block_liveness(
    server: ServerProcess, estimators: dict[str, Any], slow_request: tuple[np.ndarray, bytes]
) -> None:
    """While a slow predict is in flight, /v2/health/live keeps answering."""
    rows, body = slow_request
    response = check_live_during(server, "slow", body)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert [output["name"] for output in outputs] == ["predict"]
    np.testing.assert_array_equal(np.asarray(outputs[0]["data"]), estimators["slow"].predict(rows))
