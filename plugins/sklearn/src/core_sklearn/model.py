"""`SKLearnModel`: serves a scikit-learn estimator saved with joblib or pickle."""

from __future__ import annotations

from typing import Any

import joblib
import numpy as np

from core import BadRequest, Model, run_in_thread
from core.codecs import NumpyCodec, NumpyRequestCodec
from core.executor import BlockingCalls
from core.storage import get_model_uri
from core.types import InferenceRequest, InferenceResponse, RequestOutput

WELLKNOWN_ARTIFACTS = ("model.joblib", "model.pkl", "model.pickle")

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
TRANSFORM = "transform"
METHODS = (PREDICT, PREDICT_PROBA, TRANSFORM)


class SKLearnModel(Model):
    """Outputs `predict` by default; `predict_proba` and `transform` on request."""

    async def load(self) -> bool:
        path = get_model_uri(self.settings, WELLKNOWN_ARTIFACTS)
        self._estimator = await run_in_thread(joblib.load, path)
        self._available = [m for m in METHODS if callable(getattr(self._estimator, m, None))]
        if not self._available:
            raise TypeError(f"{path} holds a {type(self._estimator).__name__}, not an estimator")
        self._default_outputs = [RequestOutput(name=self._available[0])]
        self._calls = BlockingCalls()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        requested = payload.outputs or self._default_outputs
        unknown = [output.name for output in requested if output.name not in self._available]
        if unknown:
            raise BadRequest(
                f"model '{self.name}' has no output {', '.join(map(repr, unknown))}; "
                f"available outputs: {', '.join(self._available)}"
            )
        features = self.decode_request(payload, default_codec=NumpyRequestCodec)
        methods = [output.name for output in requested]
        try:
            results = await self._calls.run(getattr(features, "size", 0), self._call, features, methods)
        except ValueError as error:
            # scikit-learn reports input it cannot use (wrong number of features,
            # unknown column names, NaN) as ValueError: a bad request, not a 500.
            raise BadRequest(f"model '{self.name}': {error}") from None
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                self.encode(result, output, default_codec=NumpyCodec)
                for result, output in zip(results, requested, strict=True)
            ],
        )

    def _call(self, features: Any, methods: list[str]) -> list[np.ndarray]:
        # All requested outputs in one call: one hand-off to the thread pool at most.
        return [np.asarray(getattr(self._estimator, method)(features)) for method in methods]
