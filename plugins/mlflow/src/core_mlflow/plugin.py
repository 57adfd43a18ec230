"""Entry point of the `core-mlflow` plugin. Imported by every core process:
nothing here imports mlflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.plugins import Runtime, hookimpl
from core.repository import read_head


def recognise(path: Path) -> bool:
    """An MLflow model's `MLmodel` file: YAML naming its flavors."""
    return b"flavors:" in read_head(path, 4096)


@hookimpl
def core_runtimes() -> list[Runtime]:
    return [
        Runtime(
            alias="mlflow",
            implementation="core_mlflow.MLflowModel",
            description="MLflow models (a folder with an MLmodel file), served through pyfunc",
            artifacts=("MLmodel",),
            recognise=recognise,
            claims_folder=True,
        )
    ]


@hookimpl
def core_rest_routers(dataplane: Any, settings: Any) -> list[Any]:
    from .invocations import invocations_router

    return [invocations_router(dataplane)]
