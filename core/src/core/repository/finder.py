"""Finds the models to serve: every model-settings.json below a folder; when
there is none, the artifact the folder holds, or the artifact file given
itself, with the runtime that recognises it (see `artifacts`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError
from ..plugins.manager import get_plugin_manager
from ..settings import MODEL_SETTINGS_FILENAME, ModelSettings, build_settings, load_settings_file
from .artifacts import Detection, describe_runtimes, detect, detect_in_folder, files_in, matches

logger = logging.getLogger(__name__)

# Folders never searched: environments and tool caches can hold thousands of files.
_SKIPPED = {".git", ".venv", "venv", "node_modules", "__pycache__"}


@dataclass
class FoundModel:
    """A model that was found: its settings, or why they are unusable. `path`
    is its model-settings.json, or its artifact when `artifact` is set (served
    without a model-settings.json)."""

    name: str
    path: Path | None
    settings: ModelSettings | None = None
    error: str | None = None
    artifact: bool = False


def find_models(root: Path) -> list[FoundModel]:
    """Every model-settings.json below `root`. With none: the artifact file
    `root` is, or the one artifact file in the folder `root`; else the model
    that CORE_MODEL_IMPLEMENTATION describes; else nothing."""
    if root.is_file():
        if root.name == MODEL_SETTINGS_FILENAME:
            return [_read(root)]
        return [_from_artifact(root.stem, root, [root])]
    found = [_read(path) for path in _settings_files(root)]
    if not found and root.is_dir():
        in_folder = _artifacts_in(root)
        if in_folder:
            found.append(_from_artifact(root.resolve().name, root, in_folder))
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


def _artifacts_in(folder: Path) -> list[Path]:
    """The files in `folder` an installed runtime serves (only those of a
    runtime that claims the folder, when there are any). With
    CORE_MODEL_IMPLEMENTATION (`--implementation`) naming an installed
    runtime: the files it recognises, else those its patterns match (the
    user chose the runtime; its recogniser only narrows the files)."""
    runtimes = get_plugin_manager().runtimes()
    implementation = os.environ.get("CORE_MODEL_IMPLEMENTATION")
    if not implementation:
        detections = detect_in_folder(folder, runtimes)
        # A file that makes the folder one model (an MLmodel) leaves the
        # folder's other files to that model.
        claiming = [d.path for d in detections if any(r.claims_folder for r in d.runtimes)]
        return claiming or [detection.path for detection in detections]
    forced = next((r for r in runtimes if implementation in (r.alias, r.implementation)), None)
    if forced is None:
        return []  # a runtime without artifact patterns: the CORE_MODEL_* model
    recognised = [detection.path for detection in detect_in_folder(folder, [forced])]
    return recognised or [path for path in files_in(folder) if matches(forced, path.name)]


def _from_artifact(name: str, root: Path, artifacts: list[Path]) -> FoundModel:
    """The model of a bare artifact: named after the file's stem (or its
    folder's name), served by the runtime that recognises it. CORE_MODEL_*
    variables (`--implementation`, CORE_MODEL_NAME, ...) still apply."""
    try:
        implementation = _artifact_implementation(root, artifacts)
        settings = build_settings(ModelSettings, {}, "CORE_MODEL_* environment variables")
    except ConfigurationError as error:
        return FoundModel(name, root, error=error.message, artifact=True)
    settings.name = settings.name or name
    settings.implementation = settings.implementation or implementation
    settings.parameters.uri = str(artifacts[0].resolve())
    return FoundModel(settings.name, artifacts[0], settings, artifact=True)


def _artifact_implementation(root: Path, artifacts: list[Path]) -> str:
    """The runtime alias for the artifact, or a ConfigurationError saying why none fits."""
    if len(artifacts) > 1:
        raise ConfigurationError(
            f"{root} holds several model artifacts ({', '.join(path.name for path in artifacts)}) "
            "and no model-settings.json: start one of the files (core start FILE), or write a "
            "model-settings.json naming the artifact in parameters.uri"
        )
    if os.environ.get("CORE_MODEL_IMPLEMENTATION"):
        return ""  # chosen by the user: the settings take it from the environment
    runtimes = get_plugin_manager().runtimes()
    detection = detect(artifacts[0], runtimes)
    if not detection.runtimes:
        raise ConfigurationError(
            f"no installed runtime recognises {artifacts[0]} (installed: {describe_runtimes(runtimes)}); "
            "install the plugin for its framework, or write a model-settings.json naming the "
            "runtime in 'implementation'"
        )
    if detection.ambiguous:
        raise ConfigurationError(_ambiguity(detection))
    return detection.runtimes[0].alias


def _ambiguity(detection: Detection) -> str:
    runtimes = sorted(detection.runtimes, key=lambda runtime: runtime.alias)
    candidates = ", ".join(f"{r.alias} ({r.implementation})" for r in runtimes)
    return (
        f"several installed runtimes can serve {detection.path}: {candidates}; choose one with "
        f"--implementation {runtimes[0].alias} (or CORE_MODEL_IMPLEMENTATION), or write a "
        "model-settings.json with an 'implementation'"
    )


def _from_environment() -> FoundModel:
    try:
        settings = build_settings(ModelSettings, {}, "CORE_MODEL_* environment variables")
    except ConfigurationError as error:
        return FoundModel("model", None, error=error.message)
    settings.name = settings.name or "model"
    return FoundModel(settings.name, None, settings)
