"""A model's Ray Serve deployment options, from its settings:
`parameters.extra.ray` (else `replicas` for the replica count), and its
environment as a Ray runtime_env."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigurationError
from core.settings import ModelSettings, describe_validation_error


class Autoscaling(BaseModel):
    """Ray Serve's autoscaling_config; its other fields pass through."""

    model_config = ConfigDict(extra="allow")

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)


class RayOptions(BaseModel):
    """`parameters.extra.ray` of model-settings.json."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int | None = Field(default=None, ge=1)
    autoscaling: Autoscaling | None = None
    # CPUs Ray reserves for each replica (fractions allowed).
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    # Requests a replica takes at once before Ray queues them at the proxy.
    max_ongoing_requests: int = Field(default=32, ge=1)
    # Merged into the runtime_env core derives from the model's environment.
    runtime_env: dict[str, Any] = Field(default_factory=dict)


def ray_options(settings: ModelSettings) -> RayOptions:
    values = settings.parameters.extra.get("ray", {}) if settings.parameters else {}
    try:
        options = RayOptions.model_validate(values)
    except ValidationError as error:
        problems = describe_validation_error(error, within="parameters.extra.ray.")
        raise ConfigurationError(f"model '{settings.name}': {problems}") from None
    if options.num_replicas is not None and options.autoscaling is not None:
        raise ConfigurationError(
            f"model '{settings.name}': parameters.extra.ray sets both num_replicas and autoscaling"
        )
    if options.num_replicas is None and options.autoscaling is None:
        options.num_replicas = settings.replicas or 1
    return options


def runtime_env(settings: ModelSettings, options: RayOptions, env_vars: dict[str, str]) -> dict[str, Any]:
    """The replicas' runtime_env: a model's `environment_path` (a Python
    environment with core, the model's plugin and ray installed) becomes
    `py_executable`; `env_vars` reach every replica."""
    environment: dict[str, Any] = {"env_vars": dict(env_vars)}
    if settings.parameters and settings.parameters.environment_path:
        path = Path(settings.parameters.environment_path)
        if not path.is_absolute() and settings.source is not None:
            path = settings.source.parent / path
        environment["py_executable"] = str(path / "bin" / "python")
    custom = dict(options.runtime_env)
    environment["env_vars"].update(custom.pop("env_vars", {}))
    environment.update(custom)
    return environment


def app_name(settings: ModelSettings) -> str:
    """The Ray Serve application of a model version: `core-NAME` or
    `core-NAME-VERSION` (Ray allows letters, digits, `-`, `_` and `.`)."""
    name = settings.name if settings.version is None else f"{settings.name}-{settings.version}"
    return "core-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def cluster_env_vars() -> dict[str, str]:
    """What every replica gets from the process that deploys it."""
    names = ("PROMETHEUS_MULTIPROC_DIR",)
    found = {name: os.environ[name] for name in names if os.environ.get(name)}
    found.update({k: v for k, v in os.environ.items() if k.startswith("CORE_")})
    return found
