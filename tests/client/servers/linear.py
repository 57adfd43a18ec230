"""The function both independent servers serve, and the tests check against:
numpy only, so it imports the same in KServe's venv, MLServer's and .venv.

"iris" (and "spare", the same model, for the repository load/unload calls):
input "input-0" [N, 4] FP32 or FP64 -> "scores" [N, 3] in the input's float
type (x @ WEIGHTS + BIAS) and "predict" [N] INT64 (argmax of the scores).
"strings": input "text" [N] BYTES -> "upper" [N] BYTES (upper-cased) and
"length" [N] INT64 (bytes per element)."""

from __future__ import annotations

import numpy as np

WEIGHTS = np.array(
    [[0.5, -0.25, 0.125], [-1.0, 0.75, 0.25], [0.25, 0.5, -1.5], [1.5, -0.5, 0.75]], dtype=np.float64
)
BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float64)
NUMERIC_INPUT = "input-0"
NUMERIC_OUTPUTS = ("scores", "predict")
STRING_INPUT = "text"
STRING_OUTPUTS = ("upper", "length")


def linear(features: np.ndarray) -> dict[str, np.ndarray]:
    """The numeric model's outputs, by name, for `features` [N, 4]."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != 4:
        raise ValueError(f"expected features of shape [N, 4], got {list(features.shape)}")
    dtype = features.dtype if features.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    scores = (features.astype(np.float64) @ WEIGHTS + BIAS).astype(dtype)
    return {"scores": scores, "predict": np.argmax(scores, axis=1).astype(np.int64)}


def shout(texts: np.ndarray) -> dict[str, np.ndarray]:
    """The string model's outputs, by name, for `texts` [N] (bytes or str)."""
    raw = [t if isinstance(t, bytes) else str(t).encode() for t in np.asarray(texts, dtype=object).ravel()]
    return {
        "upper": np.array([t.upper() for t in raw], dtype=object),
        "length": np.array([len(t) for t in raw], dtype=np.int64),
    }
