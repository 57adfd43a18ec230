"""The hooks a plugin may implement. Version 1. Keep them few and stable: a
plugin module implements any of them with `@core.plugins.hookimpl`."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    patterns (globs) the runtime can serve."""

    alias: str
    implementation: str
    description: str = ""
    artifacts: tuple[str, ...] = field(default_factory=tuple)


@hookspec
def core_runtimes() -> list[Runtime]:  # type: ignore[empty-body]
    """The runtimes this plugin provides."""


@hookspec
def core_codecs() -> list[Any]:  # type: ignore[empty-body]
    """The InputCodec and RequestCodec classes this plugin provides."""
