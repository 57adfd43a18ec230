"""The runtime's settings: `parameters.extra` of model-settings.json, with
`CORE_MODEL_HUGGINGFACE_*` environment variables below them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError
from core.settings import ModelSettings, describe_validation_error


class HuggingFaceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CORE_MODEL_HUGGINGFACE_", extra="forbid", protected_namespaces=()
    )

    # The pipeline task; None: inferred from the model's config.architectures.
    task: str | None = None
    # A hub id (or a local folder) to load instead of parameters.uri / the model's folder.
    pretrained_model: str | None = None
    # The tokenizer's hub id or folder, when it is not the model's.
    pretrained_tokenizer: str | None = None
    # Hub revision (branch, tag or commit) of pretrained_model.
    revision: str | None = None
    # "cpu", "cuda", "cuda:N", "mps", or "auto" (device_map="auto": needs `accelerate`).
    device: str = "cpu"
    # "auto" (the checkpoint's), "float32", "float16", "bfloat16".
    dtype: str = "auto"
    # Passed to from_pretrained (attn_implementation, low_cpu_mem_usage, ...).
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    # Passed to transformers.pipeline() (e.g. a default top_k, or generation settings).
    pipeline_kwargs: dict[str, Any] = Field(default_factory=dict)
    # Runs the model's own Python code from its folder or the hub: off unless asked.
    trust_remote_code: bool = False
    # torch's thread pools in the process that serves the model; None: torch's defaults.
    inter_op_threads: int | None = Field(default=None, ge=1)
    intra_op_threads: int | None = Field(default=None, ge=1)
    # Pipeline calls of this model that run at once (streams not counted);
    # more wait their turn. torch already spreads one call over the cores:
    # calls side by side only fight for them and for the GIL (measured: half
    # the throughput). Batching is the way to serve many requests.
    concurrent_calls: int = Field(default=1, ge=1)
    # feature-extraction: how token vectors become one embedding per input.
    pooling: Literal["mean", "cls"] = "mean"
    # feature-extraction: scale embeddings to unit length.
    normalize: bool = False


def huggingface_settings(settings: ModelSettings) -> HuggingFaceSettings:
    """The runtime's settings of a model; a ConfigurationError naming the
    field for an unknown or invalid one."""
    try:
        return HuggingFaceSettings(**settings.parameters.extra)
    except ValidationError as error:
        problems = describe_validation_error(error, within="parameters.extra.")
        raise ConfigurationError(f"model '{settings.name}': {problems}") from None
