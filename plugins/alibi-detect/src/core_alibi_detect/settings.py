"""The runtime's settings: `parameters.extra` of model-settings.json, with
`CORE_MODEL_ALIBI_DETECT_*` environment variables below them."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError
from core.settings import ModelSettings, describe_validation_error


class DetectorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CORE_MODEL_ALIBI_DETECT_", extra="forbid", protected_namespaces=()
    )

    # Keyword arguments of the detector's predict (drift_type, return_p_val,
    # return_test_stat, outlier_type, ...); a request's parameters override them.
    predict_parameters: dict[str, Any] = Field(default_factory=dict)
    # Batch window: rows accumulated over requests before the detector runs
    # on them together; None: each request on its own.
    batch_size: int | None = Field(default=None, ge=1)
    # Seconds a window stays open after its first request: it then runs on
    # the rows it holds, however few.
    batch_timeout: float = Field(default=10.0, gt=0)
    # Online detectors: where their state is saved; None: `state` in the
    # detector's folder (where alibi-detect's own loader looks). Relative to
    # the detector's folder.
    state_path: str | None = None
    # Online detectors: their state is saved after every this many updates
    # (rows), and at unload and shutdown.
    state_save_freq: int = Field(default=100, ge=1)
    # Loads pickled (dill) files a detector's config refers to, and
    # alibi-detect's legacy pickled format: they can run code.
    enable_unsafe_loading: bool = False
    # Labels of the per-feature metrics (p_value, distance, test_stat), in
    # column order; None: the column index.
    feature_names: list[str] | None = None


def detector_settings(settings: ModelSettings) -> DetectorSettings:
    """The runtime's settings of a model; a ConfigurationError naming the
    field for an unknown or invalid one."""
    try:
        return DetectorSettings(**settings.parameters.extra)
    except ValidationError as error:
        problems = describe_validation_error(error, within="parameters.extra.")
        raise ConfigurationError(f"model '{settings.name}': {problems}") from None
