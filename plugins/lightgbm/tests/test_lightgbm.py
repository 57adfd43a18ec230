"""core-lightgbm served by a real `core start` process, called over REST (httpx
with JSON, tritonclient.http with binary tensors) and gRPC (tritonclient.grpc),
and compared with what LightGBM itself answers: Booster text models, and
estimators and Boosters saved with joblib or pickle. What every runtime must
do (metadata, bad input, repository, batching, workers) is core's conformance
kit, in test_conformance.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from core.testing import ServerProcess, check_live_during, check_outputs, check_readme_example, json_request

Data = dict[str, tuple[np.ndarray, np.ndarray]]

# How close the served probabilities and values are to the framework's own
# (the server runs the same code on the same float32 array).
RTOL = 1e-12

# Which data set each model was trained on.
TRAINED_ON = {
    "booster-binary": "cancer",
    "booster-multi": "iris",
    "booster-regression": "diabetes",
    "booster-joblib": "cancer",
    "classifier": "iris",
    "binary": "cancer",
    "regressor": "diabetes",
}


def sample(data: Data, model: str) -> np.ndarray:
    """Every 9th row, as FP32: what tritonclient users send."""
    return np.ascontiguousarray(data[TRAINED_ON[model]][0][::9], dtype=np.float32)


def test_every_model_is_ready(client: httpx.Client) -> None:
    index = client.post("/v2/repository/index", json={}).json()
    assert {item["name"]: item["state"] for item in index} == {
        name: "READY" for name in [*TRAINED_ON, "frame", "frame-pd", "slow", "iris"]
    }, index


@pytest.mark.parametrize("model", ["booster-binary", "booster-multi", "booster-regression", "booster-joblib"])
def test_booster_predict_is_booster_predict(
    server: ServerProcess, models: dict[str, Any], data: Data, model: str
) -> None:
    features = sample(data, model)
    check_outputs(
        server, model, features, {"predict": models[model].predict(features)}, default=True, rtol=RTOL
    )


def test_binary_classifier_predict_and_predict_proba(
    server: ServerProcess, models: dict[str, Any], data: Data
) -> None:
    features = sample(data, "binary")
    estimator = models["binary"]
    labels, probabilities = estimator.predict(features), estimator.predict_proba(features)
    assert probabilities.shape == (len(features), 2)
    check_outputs(server, "binary", features, {"predict": labels}, default=True)
    check_outputs(server, "binary", features, {"predict": labels, "predict_proba": probabilities}, rtol=RTOL)


def test_regressor_predict(server: ServerProcess, models: dict[str, Any], data: Data) -> None:
    features = sample(data, "regressor")
    check_outputs(
        server, "regressor", features, {"predict": models["regressor"].predict(features)}, rtol=RTOL
    )


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("regressor", "a LightGBM regressor has no class probabilities"),
        ("booster-binary", "is a LightGBM Booster"),
    ],
)
def test_predict_proba_without_classes_is_a_400(
    client: httpx.Client, data: Data, model: str, reason: str
) -> None:
    body = json_request(sample(data, model), ["predict_proba"])
    response = client.post(f"/v2/models/{model}/infer", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "no output 'predict_proba'" in error and reason in error, error
    assert error.endswith("available outputs: predict"), error


def test_wrong_number_of_features_for_a_booster_is_a_400(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}
    response = client.post("/v2/models/booster-multi/infer", json=body)
    assert response.status_code == 400, response.text
    message = "The number of features in data (3) is not the same as it was in training data (4)"
    assert message in response.json()["error"]
    assert client.get("/v2/health/live").status_code == 200


@pytest.mark.parametrize(("model", "parameters"), [("frame", {"content_type": "pd"}), ("frame-pd", {})])
def test_dataframe_request(
    client: httpx.Client, models: dict[str, Any], data: Data, model: str, parameters: dict[str, str]
) -> None:
    """`pd` from the request, or from the settings' parameters.content_type."""
    estimator = models["frame"]
    frame = pd.DataFrame(data["iris"][0][::7], columns=estimator.booster_.feature_name())
    body = {
        **({"parameters": parameters} if parameters else {}),
        "inputs": [
            {"name": str(column), "shape": [len(frame)], "datatype": "FP64", "data": frame[column].tolist()}
            for column in frame.columns
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    response = client.post(f"/v2/models/{model}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    np.testing.assert_array_equal(outputs["predict"]["data"], estimator.predict(frame))
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], outputs["predict_proba"]["shape"]),
        estimator.predict_proba(frame),
        rtol=RTOL,
    )


def test_readme_example(server: ServerProcess, models: dict[str, Any], readme: dict[str, str]) -> None:
    """The README's model-settings.json (served verbatim) answers the README's request."""
    check_readme_example(server, readme, models["classifier"])


def test_slow_predict_does_not_block_liveness(
    server: ServerProcess, models: dict[str, Any], data: Data
) -> None:
    features = data["iris"][0]
    rows = np.random.default_rng(0).uniform(features.min(0), features.max(0), size=(50_000, 4)).round(2)
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
            ]
        }
    ).encode()
    response = check_live_during(server, "slow", body)
    assert response.status_code == 200, response.text
    expected = models["slow"].booster_.predict(rows)
    np.testing.assert_allclose(np.reshape(response.json()["outputs"][0]["data"], expected.shape), expected)
