"""A detector's folder on disk, read without importing alibi-detect (every
core process imports the plugin; the server process may not even have
alibi-detect, when the model runs in a custom environment)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.errors import ConfigurationError
from core.repository import read_head
from core.settings import ModelSettings

# alibi_detect.saving.save_detector's file, and core_alibi_detect.save_detector's
# for the detectors alibi-detect cannot save without TensorFlow.
ALIBI_CONFIG = "config.toml"
CORE_CONFIG = "core-detector.json"
CORE_FORMAT = "core-alibi-detect"
# alibi-detect's legacy (pickled) format.
LEGACY_FILES = ("meta.dill", "meta.pickle")

# Detectors whose predictions update their state: one instance only, state
# saved and restored.
STATEFUL = frozenset({"CVMDriftOnline", "FETDriftOnline", "MMDDriftOnline", "LSDDDriftOnline", "Mahalanobis"})

_NAME_LINE = re.compile(rb'^name = "(\w+)"', re.MULTILINE)


def recognise(path: Path) -> bool:
    """A detector's config.toml (its first line names an alibi-detect drift
    detector) or core-detector.json."""
    head = read_head(path, 4096)
    if path.name == CORE_CONFIG:
        return CORE_FORMAT.encode() in head
    found = _NAME_LINE.match(head)
    return found is not None and found.group(1).endswith((b"Drift", b"DriftOnline"))


def detector_folder(settings: ModelSettings) -> Path:
    """The folder holding the detector: `parameters.uri` (the folder, or a
    file in it), relative to model-settings.json, else that file's folder."""
    uri = settings.parameters.uri
    if not uri:
        return settings.folder
    path = Path(uri)
    if not path.is_absolute():
        path = settings.folder / path
    return path.parent if path.is_file() else path


def detector_name(folder: Path) -> str:
    """The class name of the detector saved in `folder`."""
    core_config = folder / CORE_CONFIG
    if core_config.is_file():
        return str(_read_json(core_config).get("name", ""))
    alibi_config = folder / ALIBI_CONFIG
    if alibi_config.is_file():
        found = _NAME_LINE.search(alibi_config.read_bytes())
        return found.group(1).decode() if found else ""
    if any((folder / name).is_file() for name in LEGACY_FILES):
        return "legacy"
    raise ConfigurationError(
        f"{folder}: no detector there: expected {ALIBI_CONFIG} (alibi_detect.saving.save_detector) "
        f"or {CORE_CONFIG} (core_alibi_detect.save_detector)"
    )


def _read_json(path: Path) -> dict[str, object]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"{path}: cannot read the detector's description: {error}") from None
    if not isinstance(value, dict) or value.get("format") != CORE_FORMAT:
        raise ConfigurationError(f"{path}: not a detector saved by core_alibi_detect.save_detector")
    return value
