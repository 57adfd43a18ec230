"""`save_detector` and `load_detector`: alibi-detect's own format where it
works, and core's for the outlier detectors that alibi-detect can save only
with TensorFlow (IForest, Mahalanobis, SpectralResidual).

core's format is a folder with `core-detector.json` (the class, its
constructor's arguments), `arrays.npz` (fitted arrays, read without pickle)
and, for IForest, `isolation_forest.skops` (the scikit-learn estimator, in
skops' format, read trusting only scikit-learn's tree type)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ALIBI_CONFIG, CORE_CONFIG, CORE_FORMAT, LEGACY_FILES, detector_name
from .backends import check_loadable

ARRAYS = "arrays.npz"
ISOLATION_FOREST = "isolation_forest.skops"
# The one type skops does not trust by default in a fitted IsolationForest.
_TRUSTED_SKOPS_TYPES = ["sklearn.tree._tree.Tree"]

# Per detector: its constructor's arguments (attributes of the same name),
# and its fitted arrays (attributes too).
_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "IForest": ("threshold",),
    "Mahalanobis": ("threshold", "n_components", "std_clip", "start_clip", "max_n", "ohe"),
    "SpectralResidual": (
        *("threshold", "window_amp", "window_local", "n_est_points", "n_grad_points"),
        *("padding_amp_method", "padding_local_method", "padding_amp_side"),
    ),
}
# Mahalanobis' running mean and covariance are also its online state.
STATE_ARRAYS: dict[str, tuple[str, ...]] = {"Mahalanobis": ("mean", "C", "n", "clip")}


def save_detector(detector: Any, path: str | os.PathLike[str]) -> None:
    """Save a fitted detector into the folder `path`: core's format for
    IForest, Mahalanobis and SpectralResidual, alibi-detect's for others."""
    name = type(detector).__name__
    folder = Path(path)
    if name not in _ARGUMENTS:
        from alibi_detect.saving import save_detector as alibi_save

        alibi_save(detector, folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    description = {
        "format": CORE_FORMAT,
        "version": 1,
        "name": name,
        "arguments": {key: _plain(getattr(detector, key)) for key in _ARGUMENTS[name]},
        "data_type": detector.meta.get("data_type"),
        "cat_vars": _categories(getattr(detector, "cat_vars", None)),
        "alibi_detect_version": detector.meta.get("version"),
    }
    arrays = state_arrays(detector)
    for column, distances in (getattr(detector, "d_abs", None) or {}).items():
        arrays[f"d_abs.{column}"] = np.asarray(distances)
    np.savez(folder / ARRAYS, **arrays)
    if name == "IForest":
        import skops.io

        skops.io.dump(detector.isolationforest, folder / ISOLATION_FOREST)
    (folder / CORE_CONFIG).write_text(json.dumps(description, indent=2) + "\n")


def load_detector(path: str | os.PathLike[str], enable_unsafe_loading: bool = False) -> Any:
    """The detector saved in the folder `path` (by `save_detector`, or
    alibi-detect's own `save_detector`). Pickled files are refused unless
    `enable_unsafe_loading`; a detector whose backend is not installed is a
    ConfigurationError naming the extra that installs it."""
    folder = Path(path)
    if folder.name in (ALIBI_CONFIG, CORE_CONFIG):
        folder = folder.parent
    name = detector_name(folder)
    if (folder / CORE_CONFIG).is_file():
        return _load_core_format(folder, name)
    check_loadable(folder, name, enable_unsafe_loading)
    from alibi_detect.saving import load_detector as alibi_load

    return alibi_load(folder, enable_unsafe_loading=enable_unsafe_loading)


def state_arrays(detector: Any) -> dict[str, np.ndarray]:
    """The arrays of a core-format detector's state (Mahalanobis' running
    statistics), by attribute."""
    arrays: dict[str, np.ndarray] = {}
    for key in STATE_ARRAYS.get(type(detector).__name__, ()):
        value = getattr(detector, key, None)
        if value is not None:
            arrays[key] = np.asarray(value)
    return arrays


def restore_state_arrays(detector: Any, arrays: Any) -> None:
    for key in STATE_ARRAYS.get(type(detector).__name__, ()):
        if key in arrays:
            value = arrays[key]
            setattr(detector, key, value.item() if value.ndim == 0 else value)
    if "clip" in arrays:
        detector.clip = list(arrays["clip"])


def _load_core_format(folder: Path, name: str) -> Any:
    description = json.loads((folder / CORE_CONFIG).read_text())
    if name not in _ARGUMENTS:
        from core.errors import ConfigurationError

        raise ConfigurationError(f"{folder / CORE_CONFIG}: unknown detector '{name}'")
    import alibi_detect.od

    arguments = dict(description.get("arguments") or {})
    if description.get("data_type") is not None and name != "SpectralResidual":
        arguments["data_type"] = description["data_type"]
    if description.get("cat_vars"):
        arguments["cat_vars"] = {int(column): count for column, count in description["cat_vars"].items()}
    detector = getattr(alibi_detect.od, name)(**arguments)
    with np.load(folder / ARRAYS, allow_pickle=False) as arrays:
        restore_state_arrays(detector, arrays)
        distances = {key.split(".", 1)[1]: arrays[key] for key in arrays.files if key.startswith("d_abs.")}
    if distances:
        detector.d_abs = {int(column): value for column, value in distances.items()}
    if name == "IForest":
        import skops.io

        detector.isolationforest = skops.io.load(folder / ISOLATION_FOREST, trusted=_TRUSTED_SKOPS_TYPES)
    return detector


def _plain(value: Any) -> Any:
    """A JSON value for a numpy scalar or a plain one."""
    return value.item() if isinstance(value, np.generic) else value


def _categories(cat_vars: dict[int, int] | None) -> dict[str, int] | None:
    return {str(column): int(count) for column, count in cat_vars.items()} if cat_vars else None


__all__ = ["LEGACY_FILES", "load_detector", "save_detector"]
