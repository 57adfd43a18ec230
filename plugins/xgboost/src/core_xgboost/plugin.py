"""Entry point of the `core-xgboost` plugin. Imports no XGBoost: listing
plugins and recognising artifacts stay cheap."""

from __future__ import annotations

import re
from pathlib import Path

from core.plugins import Runtime, hookimpl
from core.repository import read_head

# What `save_model` writes first: an object whose first key, "learner", holds
# an object; in JSON, or in UBJSON (a length-prefixed key: type marker, length).
_JSON_MODEL = re.compile(rb'\s*\{\s*"learner"\s*:\s*\{')
_UBJSON_MODEL = re.compile(rb"\{[iUIlL].{1,8}learner\{", re.DOTALL)


def recognise(path: Path) -> bool:
    """An XGBoost model saved with `save_model`: JSON or UBJSON; a `.bst` file
    is either, or XGBoost's old binary format, but never a LightGBM text
    model (MLServer's LightGBM runtime names those `model.bst` too)."""
    head = read_head(path, 64)
    if _JSON_MODEL.match(head) or _UBJSON_MODEL.match(head):
        return True
    return path.suffix.lower() == ".bst" and bool(head) and not head.startswith((b"tree", b"{"))


@hookimpl
def core_runtimes() -> list[Runtime]:
    return [
        Runtime(
            alias="xgboost",
            implementation="core_xgboost.XGBoostModel",
            description="XGBoost models saved with save_model (Booster or scikit-learn API)",
            artifacts=("*.json", "*.ubj", "*.bst"),
            recognise=recognise,
        )
    ]
