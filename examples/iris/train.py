"""Train the example iris classifier from scikit-learn's bundled data and save
it next to this file as model.joblib."""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

ARTIFACT = Path(__file__).with_name("model.joblib")


def train(path: Path = ARTIFACT) -> Path:
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), path)
    return path


if __name__ == "__main__":
    print(f"saved {train()}")
