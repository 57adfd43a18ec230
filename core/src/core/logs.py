"""Logging of the `core` command and its worker processes: the level, text
or JSON lines, uvicorn's access log and its format, the model a record was
emitted for, or a logging configuration of the user's own
(`logging_settings`).

Records emitted while a model call runs (predict, load, ...) carry the
model's name and version (`model_name`, `model_version`; empty elsewhere):
`ModelContextFilter` adds them, and core puts it on every handler it
configures, the user's included, so formats can use them."""

from __future__ import annotations

import datetime
import logging
import logging.config
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ConfigurationError
from .model_context import current_model

if TYPE_CHECKING:
    from .settings import Settings

ACCESS_LOGGER = "uvicorn.access"
# uvicorn's logger of its lifecycle messages.
SERVER_LOGGER = "uvicorn.error"
# uvicorn's own access line.
DEFAULT_ACCESS_FORMAT = '%(client_addr)s - "%(request_line)s" %(status_code)s'

# What every LogRecord has: everything else on a record is an `extra`, and
# goes into JSON lines as a field of its own.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "model",
    "model_name",
    "model_version",
    "worker",
    "color_message",  # uvicorn's colored copy of the message
}

# The handlers `configure_logging` installed, replaced when it runs again.
_installed: list[tuple[logging.Logger, logging.Handler]] = []


class ModelContextFilter(logging.Filter):
    """Adds `model_name` and `model_version` (the model whose call is
    running; empty strings outside model calls), `model` (" [name:version]"
    or empty, for text formats) and `worker` (the worker's index, or empty)."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = "" if worker is None else str(worker)

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        model = current_model.get()
        if model is not None:
            fields["model_name"], fields["model_version"] = model.name, model.version or ""
        elif "model_name" not in fields:  # or given as an `extra`
            fields["model_name"] = fields["model_version"] = ""
        name, version = fields["model_name"], fields.get("model_version") or ""
        fields["model"] = (f" [{name}:{version}]" if version else f" [{name}]") if name else ""
        fields["worker"] = self.worker
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the model
    and worker when there is one, an exception's traceback, and the
    record's extras. `message_formatter` writes the message (uvicorn's
    access formatter, for access lines)."""

    def __init__(self, message_formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.message_formatter = message_formatter

    def format(self, record: logging.LogRecord) -> str:
        if self.message_formatter is not None:
            message = self.message_formatter.formatMessage(record)
        else:
            message = record.getMessage()
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for field in ("model_name", "model_version", "worker"):
            value = getattr(record, field, "")
            if value:
                line[field] = value
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class ProcessMessagesOnce(logging.Filter):
    """Lets uvicorn's messages about the process through once. The server
    process runs two uvicorn servers (inference and metrics), and each logs
    "Started server process [pid]", "Shutting down" and "Finished server
    process [pid]": the same line twice."""

    MESSAGES = frozenset({"Started server process [%d]", "Shutting down", "Finished server process [%d]"})

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in self.MESSAGES:
            return True
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def configure_logging(settings: Settings, worker: int | None = None) -> None:
    """Set up logging for a server (or a worker, `worker` its index) from
    its settings. `logging_settings` replaces everything else but the level
    of core's own loggers."""
    _remove_installed()
    server_logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ProcessMessagesOnce) for f in server_logger.filters):
        server_logger.addFilter(ProcessMessagesOnce())
    context = ModelContextFilter(worker)
    if settings.logging_settings is not None:
        apply_logging_settings(settings.logging_settings)
        for handler in _all_handlers():
            if not any(isinstance(f, ModelContextFilter) for f in handler.filters):
                handler.addFilter(context)
        logging.getLogger("core").setLevel(settings.log_level.upper())
        return
    root = logging.getLogger()
    root.setLevel(settings.log_level.upper())
    _install(root, _handler(_formatter(settings, worker), context))
    access = logging.getLogger(ACCESS_LOGGER)
    access.propagate = False
    _install(access, _handler(_access_formatter(settings), context))


def _formatter(settings: Settings, worker: int | None) -> logging.Formatter:
    if settings.log_format == "json":
        return JSONFormatter()
    process = "" if worker is None else f" [worker {worker}]"
    return logging.Formatter(f"%(asctime)s{process} [%(levelname)s] %(name)s%(model)s: %(message)s")


def _access_formatter(settings: Settings) -> logging.Formatter:
    from uvicorn.logging import AccessFormatter

    access = AccessFormatter(settings.access_log_format or DEFAULT_ACCESS_FORMAT, use_colors=False)
    if settings.log_format == "json":
        return JSONFormatter(message_formatter=access)
    return access


def _handler(formatter: logging.Formatter, context: logging.Filter) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(context)
    return handler


def _install(logger: logging.Logger, handler: logging.Handler) -> None:
    # Handlers set up before (logging.basicConfig, a second call) would print twice.
    for previous in list(logger.handlers):
        logger.removeHandler(previous)
    logger.addHandler(handler)
    _installed.append((logger, handler))


def _remove_installed() -> None:
    while _installed:
        logger, handler = _installed.pop()
        logger.removeHandler(handler)


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    return [handler for logger in loggers for handler in logger.handlers]


def apply_logging_settings(config: str | dict[str, Any]) -> None:
    """A dictConfig dict, or a file: JSON or YAML (dictConfig), .ini or
    .conf (fileConfig). Errors name the file."""
    if isinstance(config, dict):
        _dict_config(config, "logging_settings")
        return
    path = Path(config)
    if not path.is_file():
        raise ConfigurationError(f"logging_settings: {path} is not a file")
    suffix = path.suffix.lower()
    if suffix in (".ini", ".conf", ".cfg"):
        try:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        except Exception as error:  # configparser's, KeyError for a missing section, ...
            raise ConfigurationError(f"{path}: cannot use this logging configuration: {error}") from None
        return
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigurationError(f"{path}: reading YAML needs PyYAML (pip install pyyaml)") from None
        load: Any = yaml.safe_load
    else:
        load = orjson.loads
    try:
        data = load(path.read_bytes())
    except Exception as error:  # JSON or YAML syntax
        raise ConfigurationError(f"{path}: cannot read this logging configuration: {error}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: a logging configuration is a mapping (dictConfig)")
    _dict_config(data, str(path))


def _dict_config(data: dict[str, Any], source: str) -> None:
    data = {"version": 1, "disable_existing_loggers": False, **data}
    try:
        logging.config.dictConfig(data)
    except (ValueError, TypeError, AttributeError, ImportError) as error:
        raise ConfigurationError(f"{source}: cannot use this logging configuration: {error}") from None
