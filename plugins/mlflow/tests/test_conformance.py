"""core-mlflow against core's runtime conformance kit: a scikit-learn
classifier saved with mlflow.sklearn and a tensor signature, served and
called every way the kit calls a runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from core.testing.conformance import RuntimeConformance


class TestMLflowRuntime(RuntimeConformance):
    implementation = "mlflow"
    model_settings = {"parameters": {"uri": "./mlflow-model"}}
    # The in-process path is the rest of this suite's (conftest.py's `server`).
    parallel_workers = (2,)

    def save_model(self, folder: Path) -> LogisticRegression:
        features, labels = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=500).fit(features, labels)
        mlflow.sklearn.save_model(
            model,
            folder / "mlflow-model",
            signature=infer_signature(features, model.predict(features)),
            pip_requirements=["scikit-learn"],
        )
        return model

    def rows(self) -> np.ndarray:
        return load_iris(return_X_y=True)[0][::9]

    def expected(self, model: LogisticRegression, rows: np.ndarray) -> dict[str, Any]:
        # pyfunc's one output, named as core-mlflow names it.
        return {"predictions": model.predict(rows)}
