"""`LightGBMModel`: serves a LightGBM Booster saved as a text model, or a
LightGBM estimator (`LGBMClassifier`, ...) or Booster saved with joblib or
pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb

from core.estimator import EstimatorModel, Methods
from core.repository import read_head

from .plugin import is_text_model

NO_PROBA_BOOSTER = (
    "the model is a LightGBM Booster: 'predict' is what Booster.predict returns, "
    "class probabilities for objectives such as binary and multiclass"
)


class LightGBMModel(EstimatorModel):
    """Outputs `predict` by default; `predict_proba` on request for classifiers
    saved from `LGBMClassifier`."""

    # LightGBMError: a Booster's complaint about its input (wrong number of features).
    input_errors = (ValueError, lgb.basic.LightGBMError)

    wellknown_artifacts = ("model.txt", "model.bst", "model.joblib", "model.pkl", "model.pickle")

    def load_methods(self, path: Path) -> Methods:
        # By content, not by name: parameters.uri may name the file anything.
        model: Any = lgb.Booster(model_file=path) if is_text_model(read_head(path, 64)) else joblib.load(path)
        if isinstance(model, lgb.Booster):
            return {"predict": model.predict}, {"predict_proba": NO_PROBA_BOOSTER}
        if isinstance(model, lgb.LGBMClassifier):
            return {"predict": model.predict, "predict_proba": model.predict_proba}, {}
        if isinstance(model, lgb.LGBMModel):
            kind = "ranker" if isinstance(model, lgb.LGBMRanker) else "regressor"
            return {"predict": model.predict}, {
                "predict_proba": f"a LightGBM {kind} has no class probabilities"
            }
        raise TypeError(
            f"{path} holds a {type(model).__module__}.{type(model).__name__}, not a LightGBM model"
        )
