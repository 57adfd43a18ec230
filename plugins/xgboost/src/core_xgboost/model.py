"""`XGBoostModel`: serves an XGBoost model saved with `save_model` from the
Booster API (`xgb.train`) or the scikit-learn API (`XGBClassifier`, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import xgboost as xgb

from core.estimator import EstimatorModel, Method, Methods

# `_estimator_type` that XGBoost's scikit-learn API saves with the model.
WRAPPERS: dict[str, type[xgb.XGBModel]] = {
    "classifier": xgb.XGBClassifier,
    "regressor": xgb.XGBRegressor,
    "ranker": xgb.XGBRanker,
}

NO_PROBA_BOOSTER = (
    "the model was saved from XGBoost's Booster API: 'predict' is what Booster.predict returns, "
    "class probabilities for objectives such as binary:logistic and multi:softprob"
)


class XGBoostModel(EstimatorModel):
    """Outputs `predict` by default; `predict_proba` on request for classifiers
    saved from `XGBClassifier`."""

    wellknown_artifacts = ("model.json", "model.ubj", "model.bst")

    def load_methods(self, path: Path) -> Methods:
        booster = xgb.Booster(model_file=str(path))
        kind = json.loads(booster.attr("scikit_learn") or "{}").get("_estimator_type")
        wrapper = WRAPPERS.get(kind) if isinstance(kind, str) else None
        if wrapper is None:
            return {"predict": _booster_predict(booster)}, {"predict_proba": NO_PROBA_BOOSTER}
        # The scikit-learn API's own predict and predict_proba: labels and
        # probabilities exactly as in the training process (they use
        # inplace_predict, which reads a numpy array where it lies).
        estimator = wrapper()
        estimator.load_model(str(path))
        if kind == "classifier":
            return {"predict": estimator.predict, "predict_proba": estimator.predict_proba}, {}
        return {"predict": estimator.predict}, {
            "predict_proba": f"an XGBoost {kind} has no class probabilities"
        }


def _booster_predict(booster: xgb.Booster) -> Method:
    """Booster.predict's values without building a DMatrix (a copy of the
    input): inplace_predict, which the gblinear booster does not support."""
    config = json.loads(booster.save_config())
    if config["learner"]["gradient_booster"]["name"] == "gblinear":

        def predict(features: Any) -> Any:
            return booster.predict(xgb.DMatrix(features))

        return predict
    return booster.inplace_predict
