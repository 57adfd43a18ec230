"""`core start FILE` and `core start FOLDER` without model-settings.json: the
installed plugins (core-sklearn, core-xgboost, core-lightgbm) recognise the
artifact, the model is served under the file's stem or the folder's name, and
`core start` fails clearly when no runtime, or more than one, fits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joblib
import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from core.testing import ServerProcess

# A plugin that claims every .joblib file by its name alone, as core-sklearn
# does: with both installed, a scikit-learn pickle is ambiguous.
DUPLICATE_PLUGIN = """
from core.plugins import Runtime, hookimpl


@hookimpl
def core_runtimes():
    return [Runtime(alias="dup", implementation="core_sklearn.SKLearnModel", artifacts=("*.joblib",))]
"""


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def artifacts(
    tmp_path_factory: pytest.TempPathFactory, iris: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    """Files and folders as users have them, and the framework objects in them."""
    root = tmp_path_factory.mktemp("artifacts")
    features, labels = iris
    models: dict[str, Any] = {
        "logreg": LogisticRegression(max_iter=1000).fit(features, labels),
        "lgbm": lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, labels),
        "booster": xgb.train(
            {"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(features, labels), 5
        ),
        "text": lgb.train(
            {"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(features, labels), 5
        ),
    }
    joblib.dump(models["logreg"], root / "iris.joblib")
    joblib.dump(models["lgbm"], root / "lgbm.joblib")
    models["booster"].save_model(root / "booster.json")
    folder = root / "text-model"
    folder.mkdir()
    models["text"].save_model(folder / "model.txt")
    (folder / "README.txt").write_text("A LightGBM model of the iris flowers.\n")
    (folder / "requirements.txt").write_text("lightgbm\n")
    return {"root": root, "models": models}


def predict(model: Any, features: np.ndarray) -> np.ndarray:
    if isinstance(model, xgb.Booster):
        return model.predict(xgb.DMatrix(features))
    return np.asarray(model.predict(features))


@pytest.mark.parametrize(
    ("path", "name", "runtime", "model", "args"),
    [
        ("iris.joblib", "iris", "sklearn", "logreg", []),
        ("lgbm.joblib", "lgbm", "lightgbm", "lgbm", []),
        ("booster.json", "booster", "xgboost", "booster", []),
        ("text-model", "text-model", "lightgbm", "text", []),
        ("booster.json", "booster", "xgboost", "booster", ["--parallel-workers", "2"]),
    ],
    ids=["sklearn-file", "lightgbm-pickle", "xgboost-file", "lightgbm-folder", "xgboost-file-2-workers"],
)
def test_an_artifact_is_served_with_the_runtime_that_recognises_it(
    artifacts: dict[str, Any],
    iris: tuple[np.ndarray, np.ndarray],
    path: str,
    name: str,
    runtime: str,
    model: str,
    args: list[str],
) -> None:
    features = iris[0][::10]
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": list(features.shape),
                "datatype": "FP64",
                "data": features.ravel().tolist(),
            }
        ]
    }
    with (
        ServerProcess(artifacts["root"] / path, *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        index = http.post("/v2/repository/index", json={}).json()
        config = http.get(f"/v2/models/{name}/config").json()
        response = http.post(f"/v2/models/{name}/infer", json=body)
        log = server.log()
    assert [(item["name"], item["state"]) for item in index] == [(name, "READY")]
    assert config["backend"] == runtime, config
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    expected = predict(artifacts["models"][model], features)
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]), expected, rtol=1e-6)
    assert f"as model '{name}' with runtime '{runtime}' (no model-settings.json)" in log, log


def test_a_model_settings_file_given_as_the_path_is_that_model(
    tmp_path: Path, artifacts: dict[str, Any]
) -> None:
    folder = tmp_path / "models" / "flowers"
    folder.mkdir(parents=True)
    joblib.dump(artifacts["models"]["logreg"], folder / "model.joblib")
    (folder / "model-settings.json").write_text(json.dumps({"name": "flowers", "implementation": "sklearn"}))
    (tmp_path / "models" / "other").mkdir()
    (tmp_path / "models" / "other" / "model-settings.json").write_text('{"implementation": "sklearn"}')
    with ServerProcess(folder / "model-settings.json") as server:
        index = httpx.post(f"{server.url}/v2/repository/index", json={}).json()
    assert [(item["name"], item["state"]) for item in index] == [("flowers", "READY")]


def test_an_mlserver_model_settings_file_is_served(
    tmp_path: Path, artifacts: dict[str, Any], iris: tuple[np.ndarray, np.ndarray]
) -> None:
    """MLServer's runtime class names are core's plugins' aliases: its
    model-settings.json serves as it is."""
    folder = tmp_path / "mushrooms"
    folder.mkdir()
    joblib.dump(artifacts["models"]["logreg"], folder / "model.joblib")
    settings = {"name": "mushrooms", "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v0.1.0"}}  # fmt: skip
    (folder / "model-settings.json").write_text(json.dumps(settings))
    features = iris[0][:3].astype(np.float32)
    with ServerProcess(folder) as server:
        body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": features.tolist()}]}
        response = httpx.post(f"{server.url}/v2/models/mushrooms/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    predicted = response.json()["outputs"][0]["data"]
    assert predicted == artifacts["models"]["logreg"].predict(features).tolist()


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`core start` that is expected to fail before serving (a timeout is a failure)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "start",
            *args,
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_a_file_no_runtime_recognises_fails_naming_it_and_the_runtimes(tmp_path: Path) -> None:
    for name, content in [
        ("notes.txt", "not a model\n"),
        ("model.json", '{"learner": 1}'),
        ("config.json", "{}"),
    ]:
        path = tmp_path / name
        path.write_text(content)
        result = start(str(path))
        assert result.returncode == 2, result.stderr
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith(f"core: no installed runtime recognises {path}"), result.stderr
        for runtime in (
            "sklearn (*.joblib, *.pkl, *.pickle)",
            "xgboost (*.json, *.ubj, *.bst)",
            "lightgbm (*.txt",
        ):
            assert runtime in error, error
        assert "Traceback" not in result.stderr


def test_a_folder_with_several_artifacts_fails_naming_them(tmp_path: Path, artifacts: dict[str, Any]) -> None:
    joblib.dump(artifacts["models"]["logreg"], tmp_path / "a.joblib")
    artifacts["models"]["booster"].save_model(tmp_path / "b.ubj")
    result = start(str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert f"core: {tmp_path} holds several model artifacts (a.joblib, b.ubj)" in result.stderr
    assert "core start FILE" in result.stderr and "model-settings.json" in result.stderr


@pytest.fixture(scope="module")
def duplicate_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An installed plugin (found through its entry point on PYTHONPATH) whose
    runtime `dup` claims .joblib files by name, like core-sklearn."""
    site = tmp_path_factory.mktemp("site")
    (site / "core_dup").mkdir()
    (site / "core_dup" / "__init__.py").write_text("")
    (site / "core_dup" / "plugin.py").write_text(DUPLICATE_PLUGIN)
    info = site / "core_dup-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: core-dup\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[core]\ndup = core_dup.plugin\n")
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def test_two_runtimes_for_one_file_fail_with_the_fix(
    artifacts: dict[str, Any], duplicate_plugin: dict[str, str]
) -> None:
    path = artifacts["root"] / "iris.joblib"
    result = start(str(path), env=duplicate_plugin)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"core: several installed runtimes can serve {path}: "), error
    assert "dup (core_sklearn.SKLearnModel), sklearn (core_sklearn.SKLearnModel)" in error
    assert "--implementation dup" in error and "model-settings.json" in error


def test_a_runtime_that_looked_inside_wins_over_a_match_by_name(
    artifacts: dict[str, Any], duplicate_plugin: dict[str, str]
) -> None:
    """sklearn and dup take any .joblib by its name; lightgbm recognised the
    LGBMClassifier in it."""
    with ServerProcess(artifacts["root"] / "lgbm.joblib", env=duplicate_plugin) as server:
        config = httpx.get(f"{server.url}/v2/models/lgbm/config").json()
    assert config["backend"] == "lightgbm"


def test_implementation_settles_an_ambiguity(
    artifacts: dict[str, Any], duplicate_plugin: dict[str, str], iris: tuple[np.ndarray, np.ndarray]
) -> None:
    features = iris[0][:3]
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": features.ravel().tolist()}]}
    with ServerProcess(
        artifacts["root"] / "iris.joblib", "--implementation", "sklearn", env=duplicate_plugin
    ) as server:
        config = httpx.get(f"{server.url}/v2/models/iris/config").json()
        response = httpx.post(f"{server.url}/v2/models/iris/infer", json=body)
    assert config["backend"] == "sklearn"
    assert response.json()["outputs"][0]["data"] == artifacts["models"]["logreg"].predict(features).tolist()


def test_a_folder_with_nothing_to_serve_starts_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("models arrive later\n")
    with ServerProcess(tmp_path, wait_for="/v2/health/ready") as server:
        index = httpx.post(f"{server.url}/v2/repository/index", json={}).json()
        log = server.log()
    assert index == []
    assert (
        f"{tmp_path} holds no model-settings.json and no model artifact an installed runtime recognises"
        in log
    )
