"""Fit the example's two models on scikit-learn's iris data and save each in
a model folder with its model-settings.json:

    iris/        the classifier (model.joblib), served by core-sklearn
    iris-drift/  a KSDrift detector with the same training data as its
                 reference (config.toml, x_ref.npy), served by core-alibi-detect

    python train.py [OUTPUT]    # OUTPUT: where to write them, default this folder

Both fits are deterministic: the same files every run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from alibi_detect.cd import KSDrift
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from core_alibi_detect import save_detector

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def train(output: Path) -> None:
    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)

    iris = output / "iris"
    iris.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), iris / "model.joblib")
    write_settings(
        iris, {"name": "iris", "implementation": "sklearn", "parameters": {"uri": "./model.joblib"}}
    )

    # A two-sample Kolmogorov-Smirnov test per feature against the training
    # data; drift when any feature's p-value is below 0.05 / 4 (Bonferroni).
    drift = output / "iris-drift"
    drift.mkdir(parents=True, exist_ok=True)
    save_detector(KSDrift(features, p_val=0.05), drift)
    write_settings(
        drift,
        {
            "name": "iris-drift",
            "implementation": "alibi-detect",
            "parameters": {"extra": {"feature_names": FEATURES}},
        },
    )


def write_settings(folder: Path, settings: dict[str, object]) -> None:
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")


if __name__ == "__main__":
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    train(output)
    print(f"saved {output / 'iris'} and {output / 'iris-drift'}")
