"""Tiny real XGBoost models, trained here, saved every way `save_model`
allows (Booster and scikit-learn API; JSON, UBJSON, .bst), and served by one
real `core start` subprocess for the whole test module."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from core.testing import ServerProcess, readme_examples

FRAME_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


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
    small = {"n_estimators": 8, "max_depth": 3}
    return {
        # Booster API
        "booster-binary": xgb.train(
            {"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(*cancer), num_boost_round=8
        ),
        "booster-multi": xgb.train(
            {"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(*iris), 8
        ),
        "booster-linear": xgb.train({"booster": "gblinear"}, xgb.DMatrix(*diabetes), 8),
        # scikit-learn API
        "classifier": xgb.XGBClassifier(**small).fit(*iris),
        "binary": xgb.XGBClassifier(**small).fit(*cancer),
        "regressor": xgb.XGBRegressor(**small).fit(*diabetes),
        "frame": xgb.XGBClassifier(**small).fit(pd.DataFrame(iris[0], columns=FRAME_COLUMNS), iris[1]),
        "slow": xgb.XGBClassifier(n_estimators=2000, max_depth=8, random_state=0).fit(*iris),
    }


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Any]) -> Path:
    """One sub-folder per model, each saved and described a different way."""
    root = tmp_path_factory.mktemp("models")
    full = "core_xgboost.XGBoostModel"
    layouts = {
        # name: (file name, settings beyond name)
        "booster-binary": ("model.json", {"implementation": "xgboost"}),
        "booster-multi": ("model.ubj", {"implementation": full}),
        "booster-linear": ("model.bst", {"implementation": "xgboost"}),
        "classifier": ("model.json", {"implementation": full}),
        "binary": (
            "artifacts/binary.ubj",
            {"implementation": "xgboost", "parameters": {"uri": "./artifacts/binary.ubj"}},
        ),
        "regressor": ("model.bst", {"implementation": "xgboost"}),
        "frame": ("model.json", {"implementation": "xgboost"}),
        "frame-pd": ("model.json", {"implementation": "xgboost", "parameters": {"content_type": "pd"}}),
        "slow": ("model.ubj", {"implementation": "xgboost"}),
    }
    for name, (filename, settings) in layouts.items():
        write_settings(root / name, name=name, **settings)
        artifact = root / name / filename
        artifact.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # XGBoost 3 warns that it writes .bst files as UBJSON: the file users have.
            warnings.filterwarnings("ignore", ".*Saving model in the UBJSON format", UserWarning)
            models["frame" if name == "frame-pd" else name].save_model(artifact)
    # The model-settings.json shown in the plugin's README, verbatim.
    (root / "readme").mkdir()
    (root / "readme" / "model-settings.json").write_text(readme_snippets()["settings"])
    models["classifier"].save_model(root / "readme" / "model.json")
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
