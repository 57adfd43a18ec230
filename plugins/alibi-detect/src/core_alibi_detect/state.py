"""An online detector's state on disk: saved every `state_save_freq`
updates and at unload, restored at load, so a restarted server continues
where it stopped. Saves are atomic: a crash mid-save leaves the last one.

The file is alibi-detect's own (`save_state`): `state.npz`, one array per
attribute of the detector's state, read without pickle."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

STATE_FILE = "state.npz"

# State of the detectors alibi-detect has no `online_state_keys` for:
# Mahalanobis' running mean, covariance, count and clipping bounds.
_STATE_KEYS: dict[str, tuple[str, ...]] = {"Mahalanobis": ("mean", "C", "n", "clip")}


def state_keys(detector: Any) -> tuple[str, ...]:
    return tuple(getattr(detector, "online_state_keys", ())) or _STATE_KEYS.get(type(detector).__name__, ())


def state_arrays(detector: Any) -> dict[str, np.ndarray]:
    """The detector's state, one array per attribute."""
    values = {key: getattr(detector, key, None) for key in state_keys(detector)}
    return {key: np.asarray(value) for key, value in values.items() if value is not None}


def restore_state_arrays(detector: Any, arrays: Any) -> None:
    """Set the detector's state from `state_arrays`' arrays. A scalar comes
    back as a Python number: alibi-detect's online detectors add to `t` in
    place, and a 0-d array there is shared by every prediction's `time`."""
    for key in state_keys(detector):
        if key in arrays:
            value = arrays[key]
            setattr(detector, key, value.item() if value.ndim == 0 else value)


class DetectorState:
    def __init__(self, detector: Any, folder: Path, save_every: int) -> None:
        self.detector = detector
        self.folder = folder
        self.save_every = save_every
        self._unsaved = 0

    def restore(self) -> bool:
        """Load the state saved in the folder, if there is one (alibi-detect's
        loader may have read it already, into 0-d arrays: read again)."""
        path = self.folder / STATE_FILE
        if not path.is_file():
            restore_state_arrays(self.detector, state_arrays(self.detector))
            return False
        with np.load(path, allow_pickle=False) as arrays:
            restore_state_arrays(self.detector, arrays)
        logger.info("detector state restored from %s", path)
        return True

    def updated(self, rows: int) -> bool:
        """Count `rows` updates; True when a save is due."""
        self._unsaved += rows
        return self._unsaved >= self.save_every

    def save(self) -> None:
        # Written beside the folder, then moved in: the folder never holds a
        # partial file, nor a scratch one that alibi-detect's loader trips on.
        scratch = self.folder.parent / f".{self.folder.name}-saving-{os.getpid()}.npz"
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            np.savez(scratch, **state_arrays(self.detector))
            self.folder.mkdir(exist_ok=True)
            os.replace(scratch, self.folder / STATE_FILE)
        finally:
            scratch.unlink(missing_ok=True)
        self._unsaved = 0
