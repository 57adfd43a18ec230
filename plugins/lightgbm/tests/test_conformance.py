"""core-lightgbm against core's runtime conformance kit: an LGBMClassifier
saved with joblib, served and called every way the kit calls a runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
from sklearn.datasets import load_iris

from core.testing.conformance import RuntimeConformance


class TestLightGBMRuntime(RuntimeConformance):
    implementation = "core_lightgbm.LightGBMModel"
    # The server runs the same code on the same float32 array.
    rtol = 1e-12
    error_messages = {
        "feature-count": "X has 3 features, but LGBMClassifier is expecting 4 features",
        "unknown-output": (
            "model 'conformance' has no output 'no-such-output'; available outputs: predict, predict_proba"
        ),
    }

    def save_model(self, folder: Path) -> lgb.LGBMClassifier:
        model = lgb.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1)
        joblib.dump(model.fit(*load_iris(return_X_y=True)), folder / "model.joblib")
        return model

    def rows(self) -> np.ndarray:
        # Every 9th flower as FP32: what tritonclient users send.
        return np.ascontiguousarray(load_iris(return_X_y=True)[0][::9], dtype=np.float32)

    def expected(self, model: lgb.LGBMClassifier, rows: np.ndarray) -> dict[str, Any]:
        return {"predict": model.predict(rows), "predict_proba": model.predict_proba(rows)}
