"""The drift-monitoring example (examples/drift-monitoring), end to end:
train.py writes the classifier's and the detector's model folders, one
`core start` serves both, and mirror.py's client sends each batch to both
and reads the drift metrics from the metrics endpoint."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import joblib
import numpy as np
import pytest

from core.testing import ServerProcess

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "drift-monitoring"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def train(output: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), str(output)], check=True)


def import_mirror() -> ModuleType:
    spec = importlib.util.spec_from_file_location("drift_monitoring_mirror", EXAMPLE / "mirror.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("drift-monitoring")
    train(output)
    return output


def test_train_writes_both_model_folders(models: Path, tmp_path: Path) -> None:
    files = {path.relative_to(models).as_posix() for path in models.rglob("*") if path.is_file()}
    assert files == {
        "iris/model-settings.json",
        "iris/model.joblib",
        "iris-drift/model-settings.json",
        "iris-drift/config.toml",
        "iris-drift/x_ref.npy",
    }
    assert json.loads((models / "iris-drift" / "model-settings.json").read_text()) == {
        "name": "iris-drift",
        "implementation": "alibi-detect",
        "parameters": {"extra": {"feature_names": FEATURES}},
    }
    # Deterministic: a second run writes the same bytes.
    train(tmp_path)
    for name in files:
        assert (tmp_path / name).read_bytes() == (models / name).read_bytes(), name


def test_mirrored_batches_show_drift_in_the_metrics(models: Path) -> None:
    mirror = import_mirror()
    estimator = joblib.load(models / "iris" / "model.joblib")
    with ServerProcess(models) as server:
        metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        results = asyncio.run(mirror.run(server.url, metrics_url))

        assert [result.kind for result in results] == ["normal"] * 5 + ["shifted"] * 3
        drifts = 0
        for result in results:
            # The classifier answers as the estimator does, drift or not.
            np.testing.assert_array_equal(result.predictions, estimator.predict(result.batch))
            shifted = result.kind == "shifted"
            drifts += shifted
            assert result.detection["is_drift"] == [int(shifted)]
            metrics = result.metrics
            assert metrics["alibi_detect_is_drift"] == int(shifted)
            assert metrics["alibi_detect_drifts_total"] == drifts
            p_values = [metrics[f"alibi_detect_p_value[{feature}]"] for feature in FEATURES]
            assert p_values == pytest.approx(result.detection["p_val"])
            threshold = metrics["alibi_detect_threshold"]
            assert threshold == pytest.approx(0.05 / 4)  # Bonferroni over the 4 features
            # The shifted features, and only they, fall below the threshold.
            assert [p < threshold for p in p_values] == [False, False, shifted, shifted]

        last = results[-1].metrics
        assert last["alibi_detect_detections_total"] == 8
        assert last["alibi_detect_rows_total"] == 8 * 30

        # The script itself, as the README runs it: the same batches again.
        script = subprocess.run(
            [sys.executable, str(EXAMPLE / "mirror.py"), server.url, metrics_url],
            check=True,
            capture_output=True,
            text=True,
        )
    lines = script.stdout.splitlines()
    assert lines[0].startswith("batch 1 (normal): ")
    assert lines[0].endswith("alibi_detect_is_drift 0, alibi_detect_drifts_total 3")
    assert lines[7].startswith("batch 8 (shifted): ")
    assert lines[7].endswith("alibi_detect_is_drift 1, alibi_detect_drifts_total 6")
    assert "  alibi_detect_drifts_total 6" in lines
