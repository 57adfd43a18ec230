"""The hooks a plugin may implement. Version 1. Keep them few and stable: a
plugin module implements any of them with `@core.plugins.hookimpl`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

PROJECT = "core"
HOOKS_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class Runtime:
    """A runtime a plugin offers.

    `implementation` is an import path ("core_sklearn.SKLearnModel") so that
    listing plugins never imports a framework. `artifacts` are file name
    patterns (globs) the runtime can serve, so that a file or folder without a
    model-settings.json can be served (`core start model.joblib`).

    `recognise`, optional, looks at a file whose name matches `artifacts` and
    says whether this runtime serves it; it must be cheap and must neither
    import the framework nor unpickle (see `core.repository.read_head` and
    `core.repository.pickled_class`). A runtime that recognised a file ranks
    above runtimes that only match its name (core.repository.artifacts)."""

    alias: str
    implementation: str
    description: str = ""
    artifacts: tuple[str, ...] = field(default_factory=tuple)
    recognise: Callable[[Path], bool] | None = field(default=None, compare=False)


@hookspec
def core_runtimes() -> list[Runtime]:  # type: ignore[empty-body]
    """The runtimes this plugin provides."""


@hookspec
def core_codecs() -> list[Any]:  # type: ignore[empty-body]
    """The InputCodec and RequestCodec classes this plugin provides."""
