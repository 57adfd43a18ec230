"""Detections as Prometheus series, through core's custom-metrics API (so
they reach the endpoint from worker processes too), each labelled with the
model; per-feature values also with `feature`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import core

from .results import Detection

# Last values: the most recent detection's, whichever process ran it.
_LAST = "livemostrecent"


def register() -> None:
    core.register("alibi_detect_detections", "Detector runs (requests, or batch windows).", kind="counter")
    core.register("alibi_detect_rows", "Rows the detector has seen.", kind="counter")
    core.register("alibi_detect_drifts", "Detector runs that found drift.", kind="counter")
    core.register(
        "alibi_detect_is_drift",
        "1 if the last run found drift, else 0.",
        kind="gauge",
        multiprocess_mode=_LAST,
    )
    for name, description in (
        ("alibi_detect_p_value", "p-value of the last run, per feature."),
        ("alibi_detect_distance", "Distance (test statistic) of the last run, per feature."),
        (
            "alibi_detect_test_stat",
            "Online detectors: the last test statistic, per feature (largest over windows).",
        ),
    ):
        core.register(name, description, kind="gauge", multiprocess_mode=_LAST, labels=["feature"])
    core.register(
        "alibi_detect_threshold", "Threshold of the last run.", kind="gauge", multiprocess_mode=_LAST
    )
    core.register(
        "alibi_detect_time",
        "Online detectors: updates since the start.",
        kind="gauge",
        multiprocess_mode=_LAST,
    )
    core.register("alibi_detect_outliers", "Instances found to be outliers.", kind="counter")
    core.register(
        "alibi_detect_instance_score",
        "Outlier scores of instances.",
        kind="histogram",
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000),
    )


def publish(detection: Detection, feature_names: Sequence[str] | None) -> None:
    data = detection.data
    core.log(alibi_detect_detections=1, alibi_detect_rows=detection.rows)
    if "is_drift" in data:
        # Per feature with drift_type "feature": drift if any feature drifted.
        # Online detectors: the last row's verdict is the current one.
        flags = np.asarray(data["is_drift"])
        current = flags[-1] if detection.row_by_row else flags
        core.log(alibi_detect_is_drift=int(np.any(current)), alibi_detect_drifts=int(np.any(flags)))
    for key, metric in (("p_val", "alibi_detect_p_value"), ("distance", "alibi_detect_distance")):
        if key in data:
            _per_feature(metric, np.asarray(data[key], dtype=float).ravel(), feature_names)
    if "test_stat" in data:
        last = np.asarray(data["test_stat"], dtype=float)[-1] if detection.row_by_row else data["test_stat"]
        stat = np.atleast_2d(np.asarray(last, dtype=float))
        _per_feature("alibi_detect_test_stat", stat.max(axis=0), feature_names)
    if "threshold" in data:
        core.log(alibi_detect_threshold=float(np.asarray(data["threshold"], dtype=float).ravel()[-1]))
    if "time" in data:
        core.log(alibi_detect_time=float(np.asarray(data["time"]).ravel()[-1]))
    if "is_outlier" in data:
        core.log(alibi_detect_outliers=int(np.sum(data["is_outlier"])))
    if "instance_score" in data:
        for score in np.asarray(data["instance_score"], dtype=float).ravel():
            core.log(alibi_detect_instance_score=score)


def _per_feature(metric: str, values: np.ndarray, names: Sequence[str] | None) -> None:
    for index, value in enumerate(values):
        label = names[index] if names is not None and index < len(names) else str(index)
        core.record(metric, float(value), feature=label)
