"""Logging configuration: logging_settings files of each kind, the JSON
formatter, the model on records emitted during a model call."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import core
from core.errors import ConfigurationError
from core.logs import JSONFormatter, ModelContextFilter, configure_logging
from core.model_context import model_context
from core.settings import ModelParameters, ModelSettings, Settings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def model() -> core.Model:
    return core.Model(ModelSettings(name="m", parameters=ModelParameters(version="4")))


def test_ini_file(tmp_path: Path) -> None:
    output = tmp_path / "out.log"
    config = tmp_path / "logging.ini"
    config.write_text(
        textwrap.dedent(
            f"""
            [loggers]
            keys=root

            [handlers]
            keys=file

            [formatters]
            keys=plain

            [logger_root]
            level=INFO
            handlers=file

            [handler_file]
            class=FileHandler
            formatter=plain
            args=({str(output)!r},)

            [formatter_plain]
            format=%(model_name)s:%(model_version)s %(message)s
            """
        )
    )
    configure_logging(Settings(logging_settings=str(config)))
    with model_context(model()):
        logging.getLogger("e2e.ini").info("inside")
    logging.getLogger("e2e.ini").info("outside")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert output.read_text().splitlines() == ["m:4 inside", ": outside"]


def test_yaml_and_dict_settings(tmp_path: Path) -> None:
    output = tmp_path / "out.log"
    handler = {"class": "logging.FileHandler", "filename": str(output), "formatter": "plain"}
    config = {
        "formatters": {"plain": {"format": "%(model_name)s %(message)s"}},
        "handlers": {"file": handler},
        "root": {"level": "INFO", "handlers": ["file"]},
    }
    yaml_file = tmp_path / "logging.yaml"
    yaml_file.write_text(json.dumps(config))  # JSON is YAML
    for source in (str(yaml_file), config):
        configure_logging(Settings(logging_settings=source))
        with model_context(model()):
            logging.getLogger("e2e").warning("hello")
    for handler_ in logging.getLogger().handlers:
        handler_.flush()
    assert output.read_text().splitlines() == ["m hello", "m hello"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{", r"bad\.json: cannot read this logging configuration"),
        ("list.json", "[]", r"list\.json: a logging configuration is a mapping"),
        ("bad.ini", "[loggers]\nkeys=root\n", r"bad\.ini: cannot use this logging configuration"),
        ("handler.json", '{"handlers": {"h": {"class": "no.such.Handler"}}}', r"handler\.json: cannot use"),
    ],
)
def test_a_broken_file_is_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        configure_logging(Settings(logging_settings=str(path)))


def test_json_formatter_fields() -> None:
    formatter = JSONFormatter()
    context = ModelContextFilter(worker=2)
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("once",), sys.exc_info(), extra={"rows": 3}
        )
    with model_context(model()):
        context.filter(record)
    line = json.loads(formatter.format(record))
    assert line["level"] == "ERROR"
    assert line["logger"] == "x"
    assert line["message"] == "failed once"
    assert (line["model_name"], line["model_version"], line["worker"]) == ("m", "4", "2")
    assert line["rows"] == 3
    assert "ValueError: broken" in line["exception"]
