"""Tiny real LightGBM models, trained here, saved the ways users save them
(Booster text models; scikit-learn-API estimators and Boosters with joblib or
pickle), and served by one real `core start` subprocess per test module."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from core.testing import ServerProcess, readme_examples

FRAME_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
QUIET = {"verbose": -1}


def write_settings(folder: Path, **settings: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-settings.json").write_text(json.dumps(settings))


@pytest.fixture(scope="session")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "iris": load_iris(return_X_y=True),
        "cancer": load_breast_cancer(return_X_y=True),
        "diabetes": load_diabetes(return_X_y=True),
    }


@pytest.fixture(scope="session")
def models(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    iris, cancer, diabetes = data["iris"], data["cancer"], data["diabetes"]
    small = {"n_estimators": 8, "num_leaves": 7, **QUIET}
    return {
        # Booster API
        "booster-binary": lgb.train({"objective": "binary", **QUIET}, lgb.Dataset(*cancer), 8),
        "booster-multi": lgb.train(
            {"objective": "multiclass", "num_class": 3, **QUIET}, lgb.Dataset(*iris), 8
        ),
        "booster-regression": lgb.train({"objective": "regression", **QUIET}, lgb.Dataset(*diabetes), 8),
        "booster-joblib": lgb.train({"objective": "binary", **QUIET}, lgb.Dataset(*cancer), 5),
        # scikit-learn API
        "classifier": lgb.LGBMClassifier(**small).fit(*iris),
        "binary": lgb.LGBMClassifier(**small).fit(*cancer),
        "regressor": lgb.LGBMRegressor(**small).fit(*diabetes),
        "frame": lgb.LGBMClassifier(**small).fit(pd.DataFrame(iris[0], columns=FRAME_COLUMNS), iris[1]),
        "slow": lgb.LGBMClassifier(n_estimators=1500, num_leaves=63, min_child_samples=2, **QUIET).fit(*iris),
    }


def _save(model: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pkl":
        path.write_bytes(pickle.dumps(model))
    elif path.suffix == ".joblib":
        joblib.dump(model, path, compress=3 if path.parent.name == "regressor" else 0)
    else:
        model.save_model(path)


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Any]) -> Path:
    """One sub-folder per model, each saved and described a different way."""
    root = tmp_path_factory.mktemp("models")
    full = "core_lightgbm.LightGBMModel"
    layouts = {
        # name: (file name, settings beyond name)
        "booster-binary": ("model.txt", {"implementation": "lightgbm"}),
        "booster-multi": ("model.bst", {"implementation": full}),  # MLServer's file name
        "booster-regression": (
            "artifacts/regression.model",
            {"implementation": "lightgbm", "parameters": {"uri": "./artifacts/regression.model"}},
        ),
        "booster-joblib": ("model.joblib", {"implementation": "lightgbm"}),
        "classifier": ("model.joblib", {"implementation": full}),
        "binary": ("model.pkl", {"implementation": "lightgbm"}),
        "regressor": ("model.joblib", {"implementation": "lightgbm"}),  # compressed
        "frame": ("model.joblib", {"implementation": "lightgbm"}),
        "frame-pd": ("model.joblib", {"implementation": "lightgbm", "parameters": {"content_type": "pd"}}),
        "slow": ("model.txt", {"implementation": "lightgbm"}),
    }
    for name, (filename, settings) in layouts.items():
        write_settings(root / name, name=name, **settings)
        model = models["frame" if name == "frame-pd" else name]
        _save(model.booster_ if name == "slow" else model, root / name / filename)
    # The model-settings.json shown in the plugin's README, verbatim.
    (root / "readme").mkdir()
    (root / "readme" / "model-settings.json").write_text(readme_snippets()["settings"])
    joblib.dump(models["classifier"], root / "readme" / "model.joblib")
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


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http
