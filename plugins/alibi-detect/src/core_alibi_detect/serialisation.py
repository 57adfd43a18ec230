"""`save_detector` and `load_detector`: alibi-detect's own format where it
works, and core's for the outlier detectors that alibi-detect can save only
with TensorFlow (IForest, Mahalanobis, SpectralResidual).

core's format is a folder with `core-detector.json` (the class, its
constructor's arguments), `arrays.npz` (fitted arrays, read without pickle)
and, for IForest, `isolation_forest.skops` (the scikit-learn estimator, in
skops' format, read trusting only scikit-learn's tree type)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ALIBI_CONFIG, CORE_CONFIG, CORE_FORMAT, LEGACY_FILES, detector_name
from .backends import check_loadable
from .state import restore_state_arrays, state_arrays

logger = logging.getLogger(__name__)

ARRAYS = "arrays.npz"
ISOLATION_FOREST = "isolation_forest.skops"
# The one type skops does not trust by default in a fitted IsolationForest.
_TRUSTED_SKOPS_TYPES = ["sklearn.tree._tree.Tree"]
# Loads of a detector whose threshold simulation may fail by chance.
_SIMULATIONS = 5

# Per detector of core's format: its constructor's arguments (attributes of
# the same name). Its fitted arrays are its state (core_alibi_detect.state).
_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "IForest": ("threshold",),
    "Mahalanobis": ("threshold", "n_components", "std_clip", "start_clip", "max_n", "ohe"),
    "SpectralResidual": (
        *("threshold", "window_amp", "window_local", "n_est_points", "n_grad_points"),
        *("padding_amp_method", "padding_local_method", "padding_amp_side"),
    ),
}


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

    _drop_unfinished_state(folder / "state")
    for attempt in range(1, _SIMULATIONS + 1):
        try:
            return alibi_load(folder, enable_unsafe_loading=enable_unsafe_loading)
        except ValueError as error:
            # FETDriftOnline simulates its thresholds again at every load, and
            # alibi-detect 0.13's simulation fails now and then (numpy's
            # binomial given a probability outside [0, 1]; about 1 load in 4
            # with n_bootstraps 300, 1 in 200 with 5000): it runs again.
            if "p < 0, p > 1 or p is NaN" not in str(error) or attempt == _SIMULATIONS:
                raise
            logger.warning("%s: %s's threshold simulation failed (%s): running it again", folder, name, error)
    raise AssertionError("unreachable")


def _drop_unfinished_state(folder: Path) -> None:
    """An empty state folder (a first save cut short) would fail
    alibi-detect's loader, which reads any `state` folder it finds."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


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
