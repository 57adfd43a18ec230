"""core-xgboost against core's runtime conformance kit: an XGBClassifier
saved as XGBoost JSON, served and called every way the kit calls a runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_iris

from core.testing.conformance import RuntimeConformance


class TestXGBoostRuntime(RuntimeConformance):
    implementation = "core_xgboost.XGBoostModel"
    error_messages = {
        "feature-count": "expected: 4, got 3",
        "unknown-output": (
            "model 'conformance' has no output 'no-such-output'; available outputs: predict, predict_proba"
        ),
    }

    def save_model(self, folder: Path) -> xgb.XGBClassifier:
        model = xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(*load_iris(return_X_y=True))
        model.save_model(folder / "model.json")
        return model

    def rows(self) -> np.ndarray:
        # Every 9th flower as FP32: what tritonclient users send.
        return np.ascontiguousarray(load_iris(return_X_y=True)[0][::9], dtype=np.float32)

    def expected(self, model: xgb.XGBClassifier, rows: np.ndarray) -> dict[str, Any]:
        return {"predict": model.predict(rows), "predict_proba": model.predict_proba(rows)}
