"""An online detector's state on disk: saved every `state_save_freq`
updates and at unload, restored at load, so a restarted server continues
where it stopped. Saves are atomic: a crash mid-save leaves the last one."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .serialisation import STATE_ARRAYS, restore_state_arrays, state_arrays

logger = logging.getLogger(__name__)

# alibi-detect's online drift detectors write this file (save_state); core's
# format writes its own state arrays under the same name.
STATE_FILE = "state.npz"


class DetectorState:
    def __init__(self, detector: Any, folder: Path, save_every: int) -> None:
        self.detector = detector
        self.folder = folder
        self.save_every = save_every
        self._unsaved = 0

    def restore(self) -> bool:
        """Load the state saved in the folder, if there is one."""
        if not (self.folder / STATE_FILE).is_file():
            return False
        if type(self.detector).__name__ in STATE_ARRAYS:
            with np.load(self.folder / STATE_FILE, allow_pickle=False) as arrays:
                restore_state_arrays(self.detector, arrays)
        else:
            self.detector.load_state(self.folder)
        logger.info("detector state restored from %s", self.folder)
        return True

    def updated(self, rows: int) -> bool:
        """Count `rows` updates; True when a save is due."""
        self._unsaved += rows
        return self._unsaved >= self.save_every

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".saving-", dir=self.folder))
        try:
            if type(self.detector).__name__ in STATE_ARRAYS:
                np.savez(scratch / STATE_FILE, **state_arrays(self.detector))
            else:
                self.detector.save_state(scratch)
            os.replace(scratch / STATE_FILE, self.folder / STATE_FILE)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._unsaved = 0
