"""Finds the models in a folder: every model-settings.json below it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError
from ..settings import MODEL_SETTINGS_FILENAME, ModelSettings, build_settings, load_settings_file

logger = logging.getLogger(__name__)

# Folders never searched: environments and tool caches can hold thousands of files.
_SKIPPED = {".git", ".venv", "venv", "node_modules", "__pycache__"}


@dataclass
class FoundModel:
    """A model-settings.json that was found: its settings, or why they are unusable."""

    name: str
    path: Path | None
    settings: ModelSettings | None = None
    error: str | None = None


def find_models(root: Path) -> list[FoundModel]:
    found = [_read(path) for path in _settings_files(root)]
    if not found and os.environ.get("CORE_MODEL_IMPLEMENTATION"):
        # A single model described by CORE_MODEL_* variables alone (containers).
        found.append(_from_environment())
    return found


def _settings_files(root: Path) -> list[Path]:
    paths = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED and not d.startswith("."))
        if MODEL_SETTINGS_FILENAME in files:
            paths.append(Path(folder) / MODEL_SETTINGS_FILENAME)
    return paths


def _read(path: Path) -> FoundModel:
    default_name = path.parent.name
    try:
        settings = load_settings_file(ModelSettings, path)
    except ConfigurationError as error:
        logger.error("%s", error.message)
        return FoundModel(default_name, path, error=error.message)
    if not settings.name:
        settings.name = default_name
    return FoundModel(settings.name, path, settings)


def _from_environment() -> FoundModel:
    try:
        settings = build_settings(ModelSettings, {}, "CORE_MODEL_* environment variables")
    except ConfigurationError as error:
        return FoundModel("model", None, error=error.message)
    settings.name = settings.name or "model"
    return FoundModel(settings.name, None, settings)
