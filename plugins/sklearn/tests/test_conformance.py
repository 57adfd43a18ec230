"""core-sklearn against core's runtime conformance kit: a scikit-learn
Pipeline (scaler, PCA, logistic regression) saved with joblib, served and
called every way the kit calls a runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core.testing.conformance import RuntimeConformance


class TestSKLearnRuntime(RuntimeConformance):
    implementation = "sklearn"
    error_messages = {
        "feature-count": "X has 3 features, but StandardScaler is expecting 4 features",
        "unknown-output": (
            "model 'conformance' has no output 'no-such-output'; available outputs: predict, predict_proba"
        ),
    }

    def save_model(self, folder: Path) -> Pipeline:
        steps = [
            ("scale", StandardScaler()),
            ("pca", PCA(n_components=3, random_state=0)),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
        pipeline = Pipeline(steps).fit(*load_iris(return_X_y=True))
        joblib.dump(pipeline, folder / "model.joblib")
        return pipeline

    def rows(self) -> np.ndarray:
        # Every 7th flower (all three classes) as FP32, what tritonclient
        # users send; the other tests send FP64 JSON.
        return load_iris(return_X_y=True)[0][::7].astype(np.float32)

    def expected(self, model: Pipeline, rows: np.ndarray) -> dict[str, Any]:
        return {"predict": model.predict(rows), "predict_proba": model.predict_proba(rows)}
