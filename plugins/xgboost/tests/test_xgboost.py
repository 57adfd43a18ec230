"""core-xgboost served by a real `core start` process, called over REST (httpx
with JSON, tritonclient.http with binary tensors) and gRPC (tritonclient.grpc),
and compared with what XGBoost itself answers: every way `save_model` saves a
model, Booster and scikit-learn API. What every runtime must do (metadata, bad
input, repository, batching, workers) is core's conformance kit, in
test_conformance.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from core.testing import ServerProcess, check_live_during, check_outputs, check_readme_example, json_request

Data = dict[str, tuple[np.ndarray, np.ndarray]]

# How close the served probabilities and values are to the framework's own
# (the server runs the same code on the same float32 array).
RTOL = 1e-6

# Which data set each model was trained on.
TRAINED_ON = {
    "booster-binary": "cancer",
    "booster-multi": "iris",
    "booster-linear": "diabetes",
    "classifier": "iris",
    "binary": "cancer",
    "regressor": "diabetes",
}


def sample(data: Data, model: str) -> np.ndarray:
    """Every 9th row, as FP32: what tritonclient users send."""
    return np.ascontiguousarray(data[TRAINED_ON[model]][0][::9], dtype=np.float32)


def booster_predict(booster: xgb.Booster, features: Any) -> np.ndarray:
    return booster.predict(xgb.DMatrix(features))


def test_every_model_is_ready(client: httpx.Client) -> None:
    index = client.post("/v2/repository/index", json={}).json()
    assert {item["name"]: item["state"] for item in index} == {
        name: "READY" for name in [*TRAINED_ON, "frame", "frame-pd", "slow", "iris"]
    }, index


@pytest.mark.parametrize("model", ["booster-binary", "booster-multi", "booster-linear"])
def test_booster_predict_is_booster_predict(
    server: ServerProcess, models: dict[str, Any], data: Data, model: str
) -> None:
    features = sample(data, model)
    check_outputs(
        server,
        model,
        features,
        {"predict": booster_predict(models[model], features)},
        default=True,
        rtol=RTOL,
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
        ("regressor", "an XGBoost regressor has no class probabilities"),
        ("booster-binary", "saved from XGBoost's Booster API"),
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
    assert "expected: 4, got 3" in response.json()["error"]
    assert client.get("/v2/health/live").status_code == 200


def frame_request(frame: pd.DataFrame, **parameters: Any) -> dict[str, Any]:
    return {
        **({"parameters": parameters} if parameters else {}),
        "inputs": [
            {"name": str(column), "shape": [len(frame)], "datatype": "FP64", "data": frame[column].tolist()}
            for column in frame.columns
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }


@pytest.mark.parametrize(("model", "parameters"), [("frame", {"content_type": "pd"}), ("frame-pd", {})])
def test_dataframe_request(
    client: httpx.Client, models: dict[str, Any], data: Data, model: str, parameters: dict[str, str]
) -> None:
    """`pd` from the request, or from the settings' parameters.content_type."""
    estimator = models["frame"]
    frame = pd.DataFrame(data["iris"][0][::7], columns=estimator.get_booster().feature_names)
    response = client.post(f"/v2/models/{model}/infer", json=frame_request(frame, **parameters))
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    np.testing.assert_array_equal(outputs["predict"]["data"], estimator.predict(frame))
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], outputs["predict_proba"]["shape"]),
        estimator.predict_proba(frame),
        rtol=RTOL,
    )


def test_dataframe_with_unknown_columns_is_a_400(client: httpx.Client, data: Data) -> None:
    frame = pd.DataFrame(data["iris"][0][:3], columns=["a", "b", "c", "d"])
    response = client.post("/v2/models/frame-pd/infer", json=frame_request(frame))
    assert response.status_code == 400, response.text
    assert "feature_names mismatch" in response.json()["error"]


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
    np.testing.assert_array_equal(response.json()["outputs"][0]["data"], models["slow"].predict(rows))
