"""`SKLearnModel`: serves a scikit-learn estimator saved with joblib or pickle."""

from __future__ import annotations

from pathlib import Path

import joblib

from core.estimator import EstimatorModel, Methods

# In this order: the first the estimator has is the default output.
METHODS = ("predict", "predict_proba", "transform")


class SKLearnModel(EstimatorModel):
    """Outputs `predict` by default; `predict_proba` and `transform` on request."""

    wellknown_artifacts = ("model.joblib", "model.pkl", "model.pickle")

    def load_methods(self, path: Path) -> Methods:
        estimator = joblib.load(path)
        methods = {
            name: getattr(estimator, name) for name in METHODS if callable(getattr(estimator, name, None))
        }
        if not methods:
            raise TypeError(f"{path} holds a {type(estimator).__name__}, not an estimator")
        return methods, {}
