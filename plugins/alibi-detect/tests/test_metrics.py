"""Detections as Prometheus series on the metrics endpoint, scraped after
known requests: counters of runs, rows, drifts and outliers, the last run's
values as gauges (per feature where the detector gives one per feature),
outlier scores as a histogram; every series labelled with its model. The
same in-process and with one and two worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from alibi_detect.cd import CVMDriftOnline, KSDrift
from alibi_detect.od import IForest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from core.testing import ServerProcess

FEATURES = ["age", "income", "score"]
MODELS = {"ks", "ks-by-feature", "iforest", "cvm", "window-size", "window-timeout"}
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000)


@pytest.fixture(scope="module")
def detectors(data: Any) -> dict[str, Any]:
    forest = IForest(n_estimators=20)
    forest.fit(data.continuous)
    forest.infer_threshold(data.continuous, threshold_perc=90)
    return {
        "ks": KSDrift(data.continuous, p_val=0.05),
        "iforest": forest,
        "cvm": CVMDriftOnline(data.continuous, ert=50, window_sizes=[10], n_bootstraps=300),
    }


@pytest.fixture(scope="module", params=["0", "1", "2"], ids=lambda n: f"{n}-workers")
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    detectors: dict[str, Any],
    write_model: Callable[..., Path],
) -> Iterator[ServerProcess]:
    """A server with `--parallel-workers` 0 (in-process), 1 or 2, on a
    repository of its own (the online detector's state stays with it)."""
    root = tmp_path_factory.mktemp(f"metrics-{request.param}")
    write_model(root, "ks", detectors["ks"], parameters={"version": "7"}, extra={"feature_names": FEATURES})
    by_feature = {"feature_names": FEATURES, "predict_parameters": {"drift_type": "feature"}}
    write_model(root, "ks-by-feature", detectors["ks"], extra=by_feature)
    write_model(root, "iforest", detectors["iforest"])
    write_model(root, "cvm", detectors["cvm"])
    write_model(root, "window-size", detectors["ks"], extra={"batch_size": 10, "batch_timeout": 30})
    write_model(root, "window-timeout", detectors["ks"], extra={"batch_size": 1000, "batch_timeout": 1})
    with ServerProcess(root, "--parallel-workers", request.param) as process:
        yield process


def infer(server: ServerProcess, path: str, body: dict[str, Any]) -> dict[str, np.ndarray]:
    response = httpx.post(f"{server.url}/v2/models/{path}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {
        o["name"]: np.asarray(o["data"], dtype=float).reshape(o["shape"]) for o in response.json()["outputs"]
    }


def scrape(server: ServerProcess) -> list[Sample]:
    """The runtime's samples; each checked to carry the model's labels."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30).text
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        if family.name.startswith("alibi_detect_")
        for sample in family.samples
    ]
    for sample in samples:
        assert sample.labels.get("model_name") in MODELS, sample
        assert "model_version" in sample.labels, sample
    return samples


def value(samples: list[Sample], name: str, model: str, **labels: str) -> float:
    """The one sample `name` of `model` with `labels`."""
    found = [
        sample
        for sample in samples
        if sample.name == name
        and sample.labels.get("model_name") == model
        and all(sample.labels.get(key) == wanted for key, wanted in labels.items())
    ]
    assert len(found) == 1, (name, model, labels, found)
    return float(found[0].value)


def series(samples: list[Sample], name: str, model: str) -> list[Sample]:
    return [sample for sample in samples if sample.name == name and sample.labels.get("model_name") == model]


def test_drift_metrics_follow_the_detections(
    server: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    drifted = infer(server, "ks/versions/7", infer_body(data.continuous_shifted[:20]))
    assert drifted["is_drift"].tolist() == [1]
    samples = scrape(server)
    assert value(samples, "alibi_detect_detections_total", "ks") == 1
    assert value(samples, "alibi_detect_rows_total", "ks") == 20
    assert value(samples, "alibi_detect_drifts_total", "ks") == 1
    assert value(samples, "alibi_detect_is_drift", "ks") == 1
    assert value(samples, "alibi_detect_threshold", "ks") == pytest.approx(drifted["threshold"][0])
    for index, feature in enumerate(FEATURES):
        assert value(samples, "alibi_detect_p_value", "ks", feature=feature) == pytest.approx(
            drifted["p_val"][index], rel=1e-6
        )
        assert value(samples, "alibi_detect_distance", "ks", feature=feature) == pytest.approx(
            drifted["distance"][index], rel=1e-6
        )
    # The feature label is the configured name, never the column index.
    assert {s.labels["feature"] for s in series(samples, "alibi_detect_p_value", "ks")} == set(FEATURES)
    assert {s.labels["model_version"] for s in series(samples, "alibi_detect_rows_total", "ks")} == {"7"}

    # A run without drift: the gauges follow it, the drift count stays.
    calm = infer(server, "ks/versions/7", infer_body(data.continuous[:30]))
    assert calm["is_drift"].tolist() == [0]
    samples = scrape(server)
    assert value(samples, "alibi_detect_detections_total", "ks") == 2
    assert value(samples, "alibi_detect_rows_total", "ks") == 50
    assert value(samples, "alibi_detect_drifts_total", "ks") == 1
    assert value(samples, "alibi_detect_is_drift", "ks") == 0
    for index, feature in enumerate(FEATURES):
        assert value(samples, "alibi_detect_p_value", "ks", feature=feature) == pytest.approx(
            calm["p_val"][index], rel=1e-6
        )


def test_drift_of_one_feature_is_drift(
    server: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    # drift_type "feature": is_drift per feature. Only the first one moves.
    rows = data.continuous[:30].copy()
    rows[:, 0] += 3
    answer = infer(server, "ks-by-feature", infer_body(rows))
    assert answer["is_drift"].tolist() == [1, 0, 0]
    samples = scrape(server)
    assert value(samples, "alibi_detect_drifts_total", "ks-by-feature") == 1
    # The run found drift: the gauge says so too, whichever feature it was in.
    assert value(samples, "alibi_detect_is_drift", "ks-by-feature") == 1
    for index, feature in enumerate(FEATURES):
        assert value(samples, "alibi_detect_p_value", "ks-by-feature", feature=feature) == pytest.approx(
            answer["p_val"][index], rel=1e-6
        )


def test_outlier_metrics_count_the_outliers_and_histogram_the_scores(
    server: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    answers = [
        infer(server, "iforest", infer_body(data.continuous_shifted[:10])),
        infer(server, "iforest", infer_body(data.continuous[:15])),
    ]
    scores = np.concatenate([answer["instance_score"] for answer in answers])
    outliers = int(sum(answer["is_outlier"].sum() for answer in answers))
    assert 0 < outliers < 25
    samples = scrape(server)
    assert value(samples, "alibi_detect_detections_total", "iforest") == 2
    assert value(samples, "alibi_detect_rows_total", "iforest") == 25
    assert value(samples, "alibi_detect_outliers_total", "iforest") == outliers
    assert value(samples, "alibi_detect_instance_score_count", "iforest") == 25
    assert value(samples, "alibi_detect_instance_score_sum", "iforest") == pytest.approx(
        scores.sum(), rel=1e-6
    )
    for bound in BUCKETS:
        counted = value(samples, "alibi_detect_instance_score_bucket", "iforest", le=str(float(bound)))
        assert counted == int((scores <= bound).sum()), bound
    assert value(samples, "alibi_detect_instance_score_bucket", "iforest", le="+Inf") == 25
    # An outlier detector has no drift series.
    assert series(samples, "alibi_detect_is_drift", "iforest") == []
    assert series(samples, "alibi_detect_drifts_total", "iforest") == []


def test_online_drift_metrics_report_the_last_row(
    server: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    calm = infer(server, "cvm", infer_body(data.continuous[:6]))
    shifted = infer(server, "cvm", infer_body(data.continuous_shifted[:14]))
    assert shifted["time"].tolist() == list(range(7, 21))
    assert shifted["is_drift"].any()
    samples = scrape(server)
    assert value(samples, "alibi_detect_time", "cvm") == 20
    assert value(samples, "alibi_detect_detections_total", "cvm") == 2
    assert value(samples, "alibi_detect_rows_total", "cvm") == 20
    # Runs that found drift on any of their rows; the gauge is the last row's.
    assert value(samples, "alibi_detect_drifts_total", "cvm") == int(calm["is_drift"].any()) + 1
    assert value(samples, "alibi_detect_is_drift", "cvm") == shifted["is_drift"][-1]
    assert value(samples, "alibi_detect_threshold", "cvm") == pytest.approx(shifted["threshold"][-1][-1])
    # test_stat: [rows, windows, features]; per feature, the last row's largest over windows.
    last = shifted["test_stat"][-1].max(axis=0)
    assert {s.labels["feature"] for s in series(samples, "alibi_detect_test_stat", "cvm")} == {"0", "1", "2"}
    for index in range(3):
        assert value(samples, "alibi_detect_test_stat", "cvm", feature=str(index)) == pytest.approx(
            last[index], rel=1e-6
        )


def test_a_window_is_one_detection_whichever_way_it_closes(
    server: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    halves = [data.continuous[:5], data.continuous[5:10]]
    with ThreadPoolExecutor(2) as threads:
        list(threads.map(lambda rows: infer(server, "window-size", infer_body(rows)), halves))
    # Closed by its timer, which runs outside any request: still labelled with the model.
    alone = infer(server, "window-timeout", infer_body(data.continuous_shifted[:3]))
    samples = scrape(server)
    assert value(samples, "alibi_detect_detections_total", "window-size") == 1
    assert value(samples, "alibi_detect_rows_total", "window-size") == 10
    assert value(samples, "alibi_detect_detections_total", "window-timeout") == 1
    assert value(samples, "alibi_detect_rows_total", "window-timeout") == 3
    for index in range(3):
        assert value(samples, "alibi_detect_p_value", "window-timeout", feature=str(index)) == pytest.approx(
            alone["p_val"][index], rel=1e-6
        )
