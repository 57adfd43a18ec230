"""Entry point of the `core-sklearn` plugin."""

from __future__ import annotations

from core.plugins import Runtime, hookimpl


@hookimpl
def core_runtimes() -> list[Runtime]:
    return [
        Runtime(
            alias="sklearn",
            implementation="core_sklearn.SKLearnModel",
            description="scikit-learn estimators saved with joblib or pickle",
            artifacts=("*.joblib", "*.pkl", "*.pickle"),
        )
    ]
