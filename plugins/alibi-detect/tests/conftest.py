"""Real detectors, fitted here on small numpy data and saved as a user saves
them (`core_alibi_detect.save_detector`, which is alibi-detect's own
`save_detector` for the drift detectors), each in a model folder with its
model-settings.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core_alibi_detect import save_detector


@dataclass(frozen=True)
class Data:
    """Reference data, and test data drawn from the same distribution and
    from a shifted one. Continuous features are float32, as most models take."""

    continuous: np.ndarray  # [200, 3]
    continuous_shifted: np.ndarray  # [50, 3], mean moved by 1.5
    categorical: np.ndarray  # [200, 2], ints in 0..2
    binary: np.ndarray  # [200, 2], 0 or 1
    series: np.ndarray  # [100], a sine with one spike at 60


@pytest.fixture(scope="session")
def data() -> Data:
    rng = np.random.default_rng(0)
    series = np.sin(np.arange(100) / 4.0)
    series[60] += 8.0
    return Data(
        continuous=rng.normal(size=(200, 3)).astype(np.float32),
        continuous_shifted=(rng.normal(size=(50, 3)) + 1.5).astype(np.float32),
        categorical=rng.integers(0, 3, size=(200, 2)),
        binary=rng.integers(0, 2, size=(200, 2)),
        series=series,
    )


WriteModel = Callable[..., Path]


def write_model(root: Path, name: str, detector: Any, **settings: Any) -> Path:
    """Save `detector` into `root/name` and write its model-settings.json
    (`implementation` alibi-detect, `settings` merged in; pass `extra={...}`
    for `parameters.extra`). Returns the model folder."""
    folder = root / name
    save_detector(detector, folder)
    extra = settings.pop("extra", None)
    body: dict[str, Any] = {"name": name, "implementation": "alibi-detect", **settings}
    if extra is not None:
        body["parameters"] = {**body.get("parameters", {}), "extra": extra}
    (folder / "model-settings.json").write_text(json.dumps(body))
    return folder


def infer_body(array: np.ndarray, **parameters: Any) -> dict[str, Any]:
    """An OIP request of one tensor `x` holding `array`."""
    datatype = {
        "f": "FP64" if array.dtype == np.float64 else "FP32",
        "i": "INT64",
        "u": "UINT64",
        "b": "BOOL",
    }
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "x",
                "shape": list(array.shape),
                "datatype": datatype[array.dtype.kind],
                "data": array.ravel().tolist(),
            }
        ]
    }
    if parameters:
        body["parameters"] = parameters
    return body


@pytest.fixture(name="write_model", scope="session")
def _write_model() -> WriteModel:
    """`write_model(root, name, detector, **settings)`, as a fixture (test
    modules do not import the conftest)."""
    return write_model


@pytest.fixture(name="infer_body", scope="session")
def _infer_body() -> Callable[..., dict[str, Any]]:
    """`infer_body(array, **parameters)`, as a fixture."""
    return infer_body
