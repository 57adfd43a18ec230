"""`SKLearnModel`: serves a scikit-learn estimator saved with joblib or pickle."""

from __future__ import annotations

import joblib

from core import run_in_thread
from core.estimator import EstimatorModel
from core.storage import get_model_uri

WELLKNOWN_ARTIFACTS = ("model.joblib", "model.pkl", "model.pickle")

# In this order: the first the estimator has is the default output.
METHODS = ("predict", "predict_proba", "transform")


class SKLearnModel(EstimatorModel):
    """Outputs `predict` by default; `predict_proba` and `transform` on request."""

    async def load(self) -> bool:
        path = get_model_uri(self.settings, WELLKNOWN_ARTIFACTS)
        estimator = await run_in_thread(joblib.load, path)
        methods = {
            name: getattr(estimator, name) for name in METHODS if callable(getattr(estimator, name, None))
        }
        if not methods:
            raise TypeError(f"{path} holds a {type(estimator).__name__}, not an estimator")
        self.serve_methods(methods)
        return True
