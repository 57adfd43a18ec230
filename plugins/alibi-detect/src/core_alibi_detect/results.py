"""A detector's prediction (`{"meta": ..., "data": ...}`) as an OIP
response: each `data` key a typed tensor, `meta` in the parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.codecs import NumpyCodec
from core.types import InferenceResponse, Parameters, ResponseOutput

# Outputs with one entry per row of the input (the rest describe the whole
# batch): a request in a batch window gets its own rows of these.
PER_ROW = frozenset({"instance_score", "is_outlier", "feature_score"})


@dataclass
class Detection:
    """One run of the detector over `rows` rows."""

    data: dict[str, np.ndarray]
    meta: dict[str, Any]
    rows: int
    # Online drift detectors run row by row: every output has one entry per row.
    row_by_row: bool = False
    extra_parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, prediction: dict[str, Any], rows: int) -> Detection:
        data = {key: _array(value) for key, value in prediction["data"].items() if value is not None}
        return cls(data, dict(prediction.get("meta") or {}), rows)

    @classmethod
    def stacked(cls, predictions: list[dict[str, Any]]) -> Detection:
        """Row-by-row predictions, each output stacked along a first axis.
        Each prediction must be a `snapshot`: a detector may update in place
        what it returned for the row before."""
        first = predictions[0]["data"]
        keys = [key for key, value in first.items() if value is not None]
        data = {key: np.stack([np.asarray(p["data"][key]) for p in predictions]) for key in keys}
        return cls(data, dict(predictions[-1].get("meta") or {}), len(predictions), row_by_row=True)

    def rows_of(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The outputs as one request of a window sees them: rows
        `start:stop` of the per-row outputs, the rest whole."""
        return {
            key: value[start:stop] if self.row_by_row or key in PER_ROW else value
            for key, value in self.data.items()
        }


def snapshot(prediction: dict[str, Any]) -> dict[str, Any]:
    """A prediction with copies of its values, as they are now."""
    data = {key: None if value is None else np.array(value) for key, value in prediction["data"].items()}
    return {"meta": prediction.get("meta"), "data": data}


def response(
    name: str, version: str | None, data: dict[str, np.ndarray], parameters: dict[str, Any]
) -> InferenceResponse:
    outputs: list[ResponseOutput] = [NumpyCodec.encode_output(key, value) for key, value in data.items()]
    plain = {key: value for key, value in parameters.items() if value is not None}
    return InferenceResponse(
        model_name=name, model_version=version, outputs=outputs, parameters=Parameters(**plain)
    )


def _array(value: Any) -> np.ndarray:
    """A tensor for a value of `data`: a scalar is a 1-element one."""
    array = np.asarray(value)
    return array.reshape(1) if array.ndim == 0 else array
