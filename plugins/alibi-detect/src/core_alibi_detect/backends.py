"""Checks made before alibi-detect loads a saved detector: its backend is
installed, and it holds no pickle unless unsafe loading is on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import toml

from core.errors import ConfigurationError

from .artifact import ALIBI_CONFIG, LEGACY_FILES

# alibi-detect's frameworks: the name its configs use, the extra of this
# package (alibi-detect's own) that installs it.
_EXTRAS = {"tensorflow": "tensorflow", "pytorch": "torch", "keops": "keops"}
_PICKLES = (".dill", ".pkl", ".pickle")


def check_loadable(folder: Path, name: str, unsafe: bool) -> None:
    if name == "legacy":
        legacy = next(file for file in LEGACY_FILES if (folder / file).is_file())
        if not unsafe:
            raise ConfigurationError(_pickle_refused(folder / legacy, "alibi-detect's legacy format"))
        _require("tensorflow", name)
        return
    config = toml.load(folder / ALIBI_CONFIG)
    for framework in sorted(_frameworks(config)):
        _require(framework, name)
    if not unsafe:
        for value in _strings(config):
            if value.endswith(_PICKLES):
                raise ConfigurationError(_pickle_refused(folder / value, f"{name}'s config"))


def _require(framework: str, name: str) -> None:
    from alibi_detect.utils import frameworks

    installed = {
        "tensorflow": frameworks.has_tensorflow,
        "pytorch": frameworks.has_pytorch,
        "keops": frameworks.has_keops,
    }
    if framework in installed and not installed[framework]:
        raise ConfigurationError(
            f"detector '{name}' needs {framework}, which is not installed: "
            f"pip install 'core-alibi-detect[{_EXTRAS[framework]}]'"
        )


def _frameworks(config: Any) -> set[str]:
    """The frameworks a config names (`backend`, and the `flavour` of its models)."""
    return {value.lower() for key, value in _leaves(config) if key in ("backend", "flavour")}


def _strings(config: Any) -> list[str]:
    return [value for _, value in _leaves(config)]


def _leaves(config: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every string value of a config, with the key it is under (nested
    tables and lists walked)."""
    if isinstance(config, dict):
        for name, value in config.items():
            yield from _leaves(value, name)
    elif isinstance(config, list):
        for item in config:
            yield from _leaves(item, key)
    elif isinstance(config, str):
        yield key, config


def _pickle_refused(path: Path, what: str) -> str:
    return (
        f"{path}: {what} is pickled, and loading it can run any code: "
        f"set parameters.extra.enable_unsafe_loading to true if the file is trusted"
    )
