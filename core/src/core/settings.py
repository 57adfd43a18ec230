"""Server and model settings. Sources, lowest priority first: defaults,
environment variables (`CORE_*` for the server, `CORE_MODEL_*` for models),
the settings file (`settings.json`, `model-settings.json`), CLI flags; with
CORE_ENVIRONMENT_OVER_FILES true, the environment above the files."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from .errors import ConfigurationError
from .types import MetadataTensor
from .version import __version__

logger = logging.getLogger(__name__)

SETTINGS_FILENAME = "settings.json"
MODEL_SETTINGS_FILENAME = "model-settings.json"
# The schemes of a transformer's `predictor_url`, and the transport each means.
PREDICTOR_SCHEMES = {"http": "rest", "https": "rest", "grpc": "grpc", "grpcs": "grpc"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORE_", extra="ignore", protected_namespaces=())

    debug: bool = False
    host: str = "0.0.0.0"
    http_port: int = 8080
    grpc_port: int = 8081
    metrics_port: int = 8082
    # Path of the Prometheus endpoint on metrics_port; None (or "") turns
    # metrics off altogether.
    metrics_endpoint: str | None = "/metrics"
    # With worker processes, where every process writes its metrics for the
    # server process to add up (prometheus_client's multiprocess mode);
    # emptied of metric files at start. None: a temporary folder.
    metrics_dir: str | None = None
    # Prefix of the REST metrics (`rest_server_requests`, ...), as MLServer's.
    metrics_rest_server_prefix: str = "rest_server"
    # N: models run in N worker processes, the server process terminates
    # HTTP and gRPC and routes requests to them; 0: in the server process.
    # 1, as MLServer's: see docs/workers.md for the measurements behind it.
    parallel_workers: int = Field(default=1, ge=0)
    model_repository_root: str = "."
    load_models_at_startup: bool = True
    # Where models' environment tarballs are unpacked (once each, in a folder
    # named by the tarball's sha256); relative to the working directory.
    environments_dir: str = ".envs"
    server_name: str = "core"
    server_version: str = __version__
    # Limits and timeouts: see docs/limits.md for what each one answers.
    # Deadline (seconds) of every call to a model: inference, metadata,
    # statistics; a model's `timeout` overrides it; 0: none. Expiry: 504 /
    # DEADLINE_EXCEEDED naming the model and the deadline.
    model_timeout: float = Field(default=60.0, ge=0)
    # Deadline (seconds) of a model's load(); a model's `load_timeout`
    # overrides it; 0: none. Expiry: the model is FAILED with that reason.
    model_load_timeout: float = Field(default=600.0, ge=0)
    # A worker that has not answered the server's heartbeat for half this
    # long (seconds) is unready; for this long, it is killed and replaced.
    worker_heartbeat_timeout: float = Field(default=10.0, gt=0)
    # On SIGTERM/SIGINT: how long (seconds) both transports may take to finish
    # the requests in flight before the server exits anyway.
    graceful_shutdown_timeout: float = Field(default=30.0, ge=0)
    # Largest request body accepted, in bytes, on every REST route (larger
    # ones get 413) and, unless grpc_max_message_length says otherwise, the
    # largest gRPC message (RESOURCE_EXHAUSTED).
    max_request_body_size: int = Field(default=256 * 1024 * 1024, gt=0)
    # Largest gRPC message received or sent, in bytes; None: max_request_body_size.
    grpc_max_message_length: int | None = Field(default=None, gt=0)
    # Most BYTES tensor elements in one request, on every transport and form,
    # from the declared shapes before any decoding; more: 413 /
    # RESOURCE_EXHAUSTED. Each element costs a Python object (~40 bytes + data).
    max_bytes_elements: int = Field(default=1_000_000, gt=0)
    # Largest HTTP request line plus headers, in bytes; larger ones get 431 and the connection closes.
    http_max_header_size: int = Field(default=64 * 1024, gt=0)
    # Most header fields in an HTTP request; more get 431 and the connection closes.
    http_max_headers: int = Field(default=100, gt=0)
    # Seconds a client has to send a request's headers, from connection open or the end of the last response.
    http_header_timeout: float = Field(default=10.0, gt=0)
    # Seconds a client may take to send each part of a request body; then 408 and the connection closes.
    http_body_timeout: float = Field(default=30.0, gt=0)
    # Seconds an idle keep-alive connection stays open after a response (uvicorn's timeout_keep_alive).
    http_keep_alive_timeout: float = Field(default=5.0, gt=0)
    # Most open HTTP connections; more get 503 and are closed. None: three
    # quarters of what the descriptor limit allows both ports (core.ports).
    http_max_connections: int | None = Field(default=None, gt=0)
    # Most open gRPC connections; more are refused. None: a quarter of what the
    # descriptor limit allows both ports (HTTP has the rest).
    grpc_max_connections: int | None = Field(default=None, gt=0)
    log_level: str = "INFO"
    # A logging configuration: a file (.json, .yaml/.yml: dictConfig; .ini,
    # .conf: fileConfig) or a dictConfig dict. Replaces core's own.
    logging_settings: str | dict[str, Any] | None = None
    # "json": one JSON object per log line.
    log_format: Literal["text", "json"] = "text"
    # Framework calls measured faster than this (seconds) run on the event
    # loop instead of a thread (see core.executor.BlockingCalls); 0: always a thread.
    inline_predict_budget: float = 0.001
    # uvicorn access log lines, one per request (off: they cost throughput).
    access_log: bool = False
    # uvicorn's access line: %(client_addr)s, %(request_line)s, %(status_code)s
    # and the usual logging fields. None: uvicorn's own.
    access_log_format: str | None = None
    # One log line per inference request with its model, version and the
    # time of each step.
    enable_latency_logging: bool = False
    # OpenTelemetry traces (needs `core[tracing]`). None: on when
    # OTEL_TRACES_EXPORTER is set to an exporter (not "none").
    tracing_enabled: bool | None = None
    root_path: str = ""
    # Model storage (docs/storage.md): where remote URIs' downloads are kept
    # between restarts (None: $XDG_CACHE_HOME/core/storage, else
    # ~/.cache/core/storage), and the most bytes kept there (None: no
    # limit; the least recently used entries go first).
    storage_cache_dir: str | None = None
    storage_cache_size: int | None = Field(default=None, gt=0)
    # Objects downloaded at once, and the size of the byte ranges a large
    # object is fetched in, in parallel.
    storage_download_workers: int = Field(default=8, ge=1)
    storage_chunk_size: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    # Where `pvc://NAME/PATH` volumes are mounted (KServe's mount point).
    storage_pvc_root: str = "/mnt/pvc"
    # Headers sent with http(s) downloads, per host:
    # {"models.example.com": {"Authorization": "Bearer ..."}}.
    storage_http_headers: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("metrics_endpoint")
    @classmethod
    def _empty_endpoint_is_none(cls, value: str | None) -> str | None:
        # An environment variable cannot say null: an empty one turns metrics off.
        return value or None


class ModelParameters(BaseSettings):
    # coerce_numbers_to_str: `"version": 1` is as good as `"version": "1"`.
    model_config = SettingsConfigDict(
        env_prefix="CORE_MODEL_", extra="allow", protected_namespaces=(), coerce_numbers_to_str=True
    )

    uri: str | None = None
    version: str | None = None
    environment_tarball: str | None = None
    environment_path: str | None = None
    format: str | None = None
    content_type: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORE_MODEL_", extra="ignore", protected_namespaces=())

    name: str = ""
    implementation: str = ""
    platform: str = ""
    versions: list[str] = Field(default_factory=list)
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    # Adaptive batching (core.batching), on when max_batch_size > 1: up to
    # max_batch_size requests, gathered for at most max_batch_time seconds
    # after the first, run as one. At most max_batch_queue_size requests wait
    # (default 8 x max_batch_size); more are answered 503 at once.
    max_batch_size: int = Field(default=0, ge=0)
    max_batch_time: float = Field(default=0.0, ge=0)
    max_batch_queue_size: int | None = Field(default=None, ge=1)
    # With worker processes: how many of them hold a replica of this model
    # (None: every worker of its pool, as MLServer loads every model everywhere).
    replicas: int | None = Field(default=None, ge=1)
    # Deadlines of this model's calls and of its load (seconds; 0: none);
    # None: the server's model_timeout and model_load_timeout.
    timeout: float | None = Field(default=None, ge=0)
    load_timeout: float | None = Field(default=None, ge=0)
    # Transformer mode (KServe's): with `predictor_url`, the model's
    # `predict` forwards each request, after its `preprocess`, to the OIP
    # server there, and the answer goes to its `postprocess`. http(s)://HOST:PORT:
    # REST; grpc(s)://HOST:PORT: gRPC. `implementation` may then be omitted
    # (core.Model: forwarding alone). `predictor_model`: the model's name at
    # the predictor (None: this model's name); `predictor_timeout`: seconds
    # each forwarded request may take, connecting included.
    predictor_url: str | None = None
    predictor_model: str | None = None
    predictor_timeout: float = Field(default=60.0, gt=0)

    # The model-settings.json this came from: relative paths resolve against its folder.
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("predictor_url")
    @classmethod
    def _predictor_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None  # an environment variable cannot say null
        scheme, separator, address = value.partition("://")
        if not separator or scheme.lower() not in PREDICTOR_SCHEMES or not address.strip("/"):
            raise ValueError(
                f"'{value}' is not a predictor address: expected http(s)://HOST:PORT (REST) "
                "or grpc(s)://HOST:PORT (gRPC)"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _transformer_needs_no_implementation(self) -> ModelSettings:
        if self.predictor_url and not self.implementation:
            self.implementation = "core.Model"
        return self

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> ModelSettings:
        bound, size = self.max_batch_queue_size, self.max_batch_size
        if bound is not None and size > 1 and bound < size:
            raise ValueError(
                f"max_batch_queue_size ({bound}) must be at least max_batch_size ({size}): "
                f"a batch is gathered in the queue"
            )
        return self

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def folder(self) -> Path:
        return self._source.parent if self._source is not None else Path.cwd()

    @property
    def version(self) -> str | None:
        return self.parameters.version


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings_file(cls: type[SettingsT], path: Path, **overrides: Any) -> SettingsT:
    """Settings from a JSON file, with environment variables below it and
    `overrides` above it. Errors name the file and the field."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ConfigurationError(f"{path}: cannot read settings: {error}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: settings must be a JSON object")
    unknown = sorted(set(data) - set(cls.model_fields))
    if unknown:
        logger.warning("%s: ignoring unknown fields %s", path, unknown)
    if environment_over_files():
        data = _unset_by_environment(cls, data)
    return build_settings(cls, {**data, **overrides}, str(path))


# The environment's place against the settings files. By default, MLServer's
# order: below them. With this variable true (core's container images set
# it), above them: the files an image bakes in are defaults that
# `docker run -e CORE_...` overrides. CLI flags stay on top either way.
ENVIRONMENT_OVER_FILES = "CORE_ENVIRONMENT_OVER_FILES"


def environment_over_files() -> bool:
    return os.environ.get(ENVIRONMENT_OVER_FILES, "").strip().lower() in ("1", "true", "yes", "on")


def _unset_by_environment(cls: type[BaseSettings], data: dict[str, Any]) -> dict[str, Any]:
    """The file's values less those of the fields the environment sets
    (read by pydantic-settings' own source, aliases and all), so the
    environment's win; a model's `parameters` field by field."""
    from_environment = EnvSettingsSource(cls)()
    kept = {key: value for key, value in data.items() if key not in from_environment}
    parameters = kept.get("parameters")
    if cls is ModelSettings and isinstance(parameters, dict):
        from_environment = EnvSettingsSource(ModelParameters)()
        kept["parameters"] = {key: value for key, value in parameters.items() if key not in from_environment}
    return kept


def build_settings(cls: type[SettingsT], values: dict[str, Any], source: str) -> SettingsT:
    try:
        settings = cls(**values)
    except ValidationError as error:
        raise ConfigurationError(f"{source}: {describe_validation_error(error)}") from None
    if isinstance(settings, ModelSettings) and source.endswith(".json"):
        settings._source = Path(source).resolve()
    return settings


def describe_validation_error(error: ValidationError, within: str = "") -> str:
    """One line per problem, each naming the field: `field 'a.b': message`;
    `within` places the fields (a plugin's settings in a model's
    `parameters.extra`: "parameters.extra.")."""
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"])
        problems.append(f"field '{within}{location}': {item['msg']}" if location else item["msg"])
    return "; ".join(problems)
