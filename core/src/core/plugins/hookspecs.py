"""The hooks a plugin may implement. Version 4 (1 + `core_rest_routers` in 2,
`core_storage` in 3, `core_launchers` in 4).
Keep them few and stable: a plugin module implements any of them with
`@core.plugins.hookimpl`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from fastapi import APIRouter

    from ..dataplane import DataPlane
    from ..settings import Settings

PROJECT = "core"
HOOKS_VERSION = 4

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
    above runtimes that only match its name (core.repository.artifacts).

    `claims_folder`: an artifact this runtime serves makes its whole folder
    one model (MLflow's `MLmodel`, a Hugging Face `config.json`): the other
    files there are that model's, never artifacts of their own (a
    `python_model.pkl` beside an `MLmodel` is not a scikit-learn model)."""

    alias: str
    implementation: str
    description: str = ""
    artifacts: tuple[str, ...] = field(default_factory=tuple)
    recognise: Callable[[Path], bool] | None = field(default=None, compare=False)
    claims_folder: bool = False


@dataclass(frozen=True)
class Storage:
    """URI schemes a plugin can fetch models from (`s3://...`).

    `open` is an import path ("core.storage.s3:open_s3") of a function
    `open(uri: str, settings: core.Settings)` that returns a
    `core.storage.RemoteStore` for the URI, or a local `pathlib.Path` when
    the scheme names files already on this machine (a mounted volume, a
    library's own cache). An ImportError there (its library is not
    installed) becomes an error with `install`, the command that adds it.

    `matches`, optional, claims URIs beyond their scheme (Azure Blob's
    `https://ACCOUNT.blob.core.windows.net/...`); it must be cheap. A
    storage that matches a URI ranks above one that only has its scheme."""

    schemes: tuple[str, ...]
    open: str
    description: str = ""
    install: str = ""
    matches: Callable[[str], bool] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Launcher:
    """Another engine `core start FOLDER --on NAME` serves a model repository
    on (core-ray's Ray Serve). `run` is an import path ("core_ray.launcher:run")
    of a function `run(settings: core.Settings) -> int` that serves
    `settings.model_repository_root` until stopped and returns the exit status."""

    name: str
    run: str
    description: str = ""


@hookspec
def core_runtimes() -> list[Runtime]:  # type: ignore[empty-body]
    """The runtimes this plugin provides."""


@hookspec
def core_storage() -> list[Storage]:  # type: ignore[empty-body]
    """The URI schemes this plugin can fetch models from."""


@hookspec
def core_codecs() -> list[Any]:  # type: ignore[empty-body]
    """The InputCodec and RequestCodec classes this plugin provides."""


@hookspec
def core_rest_routers(dataplane: DataPlane, settings: Settings) -> list[APIRouter]:  # type: ignore[empty-body]
    """Extra REST routes (FastAPI routers) for the server's REST app, such as
    OpenAI-compatible endpoints. Called once per app, in the server process.
    Routes should call models through `dataplane` (`infer`, `infer_stream`,
    `model_metadata`...), which reaches them wherever they run, worker
    processes included; this module, imported by every process, should not
    import a framework. The core's own routes come first: a plugin route
    cannot replace one. Errors raised as `core.errors.CoreError` get the
    core's `{"error"}` answers unless the router handles them itself."""


@hookspec
def core_launchers() -> list[Launcher]:  # type: ignore[empty-body]
    """The engines this plugin serves a model repository on (`core start --on NAME`)."""
