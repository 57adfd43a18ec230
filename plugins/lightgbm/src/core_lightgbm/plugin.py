"""Entry point of the `core-lightgbm` plugin. Imports no LightGBM: listing
plugins and recognising artifacts stay cheap."""

from __future__ import annotations

from pathlib import Path

from core.plugins import Runtime, hookimpl
from core.repository import pickled_class, read_head

PICKLES = (".joblib", ".pkl", ".pickle")


def is_text_model(head: bytes) -> bool:
    """A Booster saved with save_model: text starting `tree` then `version=v4`."""
    return head.startswith(b"tree") and b"version=v" in head[:32]


def recognise(path: Path) -> bool:
    """A LightGBM text model (`model.txt`; `model.bst`, MLServer's name for
    it), or a pickle (joblib or pickle) of a LightGBM object: a
    scikit-learn-API estimator or a Booster. The pickle is read, not loaded."""
    if path.suffix.lower() in PICKLES:
        name = pickled_class(path)
        return name is not None and name.startswith("lightgbm.")
    return is_text_model(read_head(path, 64))


@hookimpl
def core_runtimes() -> list[Runtime]:
    return [
        Runtime(
            alias="lightgbm",
            implementation="core_lightgbm.LightGBMModel",
            description="LightGBM Boosters (text models) and scikit-learn-API models saved with joblib",
            artifacts=("*.txt", "*.bst", *(f"*{suffix}" for suffix in PICKLES)),
            recognise=recognise,
        )
    ]
