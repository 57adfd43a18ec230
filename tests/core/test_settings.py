"""Settings: environment variables, settings files with MLServer's field names,
priorities, and errors that name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.cli.main import load_server_settings
from core.errors import ConfigurationError
from core.settings import ModelParameters, ModelSettings, Settings, load_settings_file


def write_json(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return path


def test_settings_defaults() -> None:
    settings = Settings()
    assert settings.http_port == 8080
    assert settings.grpc_port == 8081
    assert settings.parallel_workers == 1
    assert settings.debug is False


def test_settings_from_core_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_HTTP_PORT", "9000")
    monkeypatch.setenv("CORE_GRPC_PORT", "9001")
    monkeypatch.setenv("CORE_PARALLEL_WORKERS", "3")
    monkeypatch.setenv("CORE_DEBUG", "true")
    monkeypatch.setenv("CORE_HOST", "127.0.0.1")
    monkeypatch.setenv("CORE_MODEL_REPOSITORY_ROOT", "/models")
    monkeypatch.setenv("CORE_METRICS_ENDPOINT", "/prom")
    settings = Settings()
    assert settings.http_port == 9000
    assert settings.grpc_port == 9001
    assert settings.parallel_workers == 3
    assert settings.debug is True
    assert settings.host == "127.0.0.1"
    assert settings.model_repository_root == "/models"
    assert settings.metrics_endpoint == "/prom"


def test_settings_ignore_variables_of_other_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSERVER_HTTP_PORT", "1234")
    monkeypatch.setenv("HTTP_PORT", "1235")
    assert Settings().http_port == 8080


def test_model_settings_from_core_model_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_MODEL_NAME", "iris")
    monkeypatch.setenv("CORE_MODEL_IMPLEMENTATION", "sklearn")
    monkeypatch.setenv("CORE_MODEL_URI", "/models/iris.joblib")
    monkeypatch.setenv("CORE_MODEL_VERSION", "2")
    settings = ModelSettings()
    assert settings.name == "iris"
    assert settings.implementation == "sklearn"
    assert settings.parameters.uri == "/models/iris.joblib"
    assert settings.version == "2"


def test_batch_settings_from_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (ModelSettings().max_batch_size, ModelSettings().max_batch_time) == (0, 0.0)
    assert ModelSettings().max_batch_queue_size is None
    monkeypatch.setenv("CORE_MODEL_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("CORE_MODEL_MAX_BATCH_TIME", "0.25")
    monkeypatch.setenv("CORE_MODEL_MAX_BATCH_QUEUE_SIZE", "100")
    settings = ModelSettings()
    assert (settings.max_batch_size, settings.max_batch_time, settings.max_batch_queue_size) == (
        16,
        0.25,
        100,
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"max_batch_size": -1}, "field 'max_batch_size'"),
        ({"max_batch_time": -0.5}, "field 'max_batch_time'"),
        ({"max_batch_queue_size": 0}, "field 'max_batch_queue_size'"),
        (
            {"max_batch_size": 8, "max_batch_queue_size": 4},
            "max_batch_queue_size (4) must be at least max_batch_size (8)",
        ),
    ],
)
def test_bad_batch_settings(tmp_path: Path, fields: dict[str, Any], problem: str) -> None:
    path = write_json(tmp_path / "model-settings.json", {"name": "m", **fields})
    assert problem in configuration_error(path)


def test_settings_json(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "settings.json",
        {"http_port": 7000, "parallel_workers": 2, "debug": True, "server_name": "srv", "unknown": 1},
    )
    settings = load_settings_file(Settings, path)
    assert settings.http_port == 7000
    assert settings.parallel_workers == 2
    assert settings.debug is True
    assert settings.server_name == "srv"


MLSERVER_MODEL_SETTINGS = {
    "name": "income-classifier",
    "implementation": "core_sklearn.SKLearnModel",
    "platform": "sklearn",
    "versions": ["income-classifier/v1", "income-classifier/v2"],
    "max_batch_size": 16,
    "max_batch_time": 0.5,
    "inputs": [
        {"name": "age", "datatype": "INT64", "shape": [-1, 1]},
        {"name": "text", "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "str"}},
    ],
    "outputs": [{"name": "predict", "datatype": "FP32", "shape": [-1, 1]}],
    "parameters": {
        "uri": "./model.joblib",
        "version": "v2",
        "content_type": "pd",
        "extra": {"threshold": 0.5, "labels": ["a", "b"]},
        "custom_parameter": "kept",
    },
    "warm_workers": True,  # an MLServer field core does not have: ignored
}


def test_model_settings_json_with_mlserver_field_names(tmp_path: Path) -> None:
    path = write_json(tmp_path / "model-settings.json", MLSERVER_MODEL_SETTINGS)
    settings = load_settings_file(ModelSettings, path)
    assert settings.name == "income-classifier"
    assert settings.implementation == "core_sklearn.SKLearnModel"
    assert settings.platform == "sklearn"
    assert settings.versions == ["income-classifier/v1", "income-classifier/v2"]
    assert settings.max_batch_size == 16
    assert settings.max_batch_time == 0.5
    assert [(t.name, t.datatype.value, t.shape) for t in settings.inputs] == [
        ("age", "INT64", [-1, 1]),
        ("text", "BYTES", [-1]),
    ]
    assert settings.inputs[1].parameters is not None
    assert settings.inputs[1].parameters.content_type == "str"
    assert settings.outputs[0].name == "predict"
    assert settings.parameters.uri == "./model.joblib"
    assert settings.parameters.version == "v2"
    assert settings.version == "v2"
    assert settings.parameters.content_type == "pd"
    assert settings.parameters.extra == {"threshold": 0.5, "labels": ["a", "b"]}
    assert settings.parameters.model_extra == {"custom_parameter": "kept"}
    assert settings.source == path.resolve()
    assert settings.folder == tmp_path.resolve()


def test_model_settings_without_a_file_have_no_source() -> None:
    settings = ModelSettings(name="m")
    assert settings.source is None
    assert settings.folder == Path.cwd()
    assert settings.version is None


def test_priorities_overrides_beat_file_beat_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORE_HTTP_PORT", "1111")
    monkeypatch.setenv("CORE_GRPC_PORT", "2222")
    monkeypatch.setenv("CORE_METRICS_PORT", "3333")
    path = write_json(tmp_path / "settings.json", {"http_port": 4444, "grpc_port": 5555})
    settings = load_settings_file(Settings, path, http_port=6666)
    assert settings.http_port == 6666  # override
    assert settings.grpc_port == 5555  # file beats environment
    assert settings.metrics_port == 3333  # environment beats default


def test_model_priorities_nested_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_MODEL_URI", "/from/env")
    monkeypatch.setenv("CORE_MODEL_CONTENT_TYPE", "np")
    path = write_json(tmp_path / "model-settings.json", {"name": "m", "parameters": {"uri": "/from/file"}})
    settings = load_settings_file(ModelSettings, path)
    assert settings.parameters.uri == "/from/file"
    assert settings.parameters.content_type == "np"
    overridden = load_settings_file(ModelSettings, path, name="other")
    assert overridden.name == "other"


def test_environment_over_files_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CORE_ENVIRONMENT_OVER_FILES (set in core's generated images): the
    files become defaults the environment overrides, a model's parameters
    field by field; flags stay on top."""
    monkeypatch.setenv("CORE_ENVIRONMENT_OVER_FILES", "true")
    monkeypatch.setenv("CORE_HTTP_PORT", "1111")
    monkeypatch.setenv("CORE_MODEL_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("CORE_MODEL_URI", "/from/env")
    path = write_json(tmp_path / "settings.json", {"http_port": 4444, "grpc_port": 5555})
    settings = load_settings_file(Settings, path, metrics_port=6666)
    assert (settings.http_port, settings.grpc_port, settings.metrics_port) == (1111, 5555, 6666)
    model = write_json(
        tmp_path / "model-settings.json",
        {
            "name": "m",
            "max_batch_size": 2,
            "max_batch_time": 0.5,
            "parameters": {"uri": "/f", "version": "3"},
        },
    )
    loaded = load_settings_file(ModelSettings, model)
    assert (loaded.name, loaded.max_batch_size, loaded.max_batch_time) == ("m", 8, 0.5)
    assert (loaded.parameters.uri, loaded.parameters.version) == ("/from/env", "3")
    monkeypatch.setenv("CORE_ENVIRONMENT_OVER_FILES", "false")
    assert load_settings_file(Settings, path).http_port == 4444


def configuration_error(path: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_settings_file(ModelSettings, path)
    assert str(path) in caught.value.message
    assert caught.value.status_code == 400
    return caught.value.message


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    message = configuration_error(write_json(tmp_path / "model-settings.json", '{"name": "m",'))
    assert "cannot read" in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    assert "cannot read" in configuration_error(tmp_path / "model-settings.json")


def test_json_that_is_not_an_object(tmp_path: Path) -> None:
    assert "JSON object" in configuration_error(write_json(tmp_path / "model-settings.json", [1, 2]))


def test_wrong_type_in_a_nested_field_names_the_field(tmp_path: Path) -> None:
    path = write_json(tmp_path / "model-settings.json", {"name": "m", "parameters": {"version": ["1"]}})
    message = configuration_error(path)
    assert "field 'parameters.version'" in message


def test_parameters_as_a_list_names_the_field(tmp_path: Path) -> None:
    path = write_json(tmp_path / "model-settings.json", {"name": "m", "parameters": [{"uri": "x"}]})
    assert "field 'parameters'" in configuration_error(path)


def test_every_bad_field_is_named(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "model-settings.json",
        {
            "name": "m",
            "max_batch_size": "many",
            "inputs": [{"name": "a", "datatype": "FP99", "shape": [1]}],
        },
    )
    message = configuration_error(path)
    assert "field 'max_batch_size'" in message
    assert "field 'inputs.0.datatype'" in message


def test_bad_settings_json(tmp_path: Path) -> None:
    path = write_json(tmp_path / "settings.json", {"http_port": "eighty"})
    with pytest.raises(ConfigurationError) as caught:
        load_settings_file(Settings, path)
    assert str(path) in caught.value.message
    assert "field 'http_port'" in caught.value.message


def test_model_parameters_alone() -> None:
    parameters = ModelParameters(uri="s3://b/k", extra={"a": 1})
    assert parameters.uri == "s3://b/k"
    assert parameters.extra == {"a": 1}


# load_server_settings: what `core start FOLDER` uses


def test_load_server_settings_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_PARALLEL_WORKERS", "2")
    monkeypatch.setenv("CORE_HTTP_PORT", "9100")
    settings = load_server_settings(tmp_path, {"http_port": 9200})
    assert settings.model_repository_root == str(tmp_path)
    assert settings.parallel_workers == 2
    assert settings.http_port == 9200


def test_load_server_settings_with_settings_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_GRPC_PORT", "9300")
    monkeypatch.setenv("CORE_HTTP_PORT", "9301")
    write_json(tmp_path / "settings.json", {"http_port": 9400, "metrics_port": 9401, "log_level": "DEBUG"})
    settings = load_server_settings(tmp_path, {"metrics_port": 9500})
    assert settings.model_repository_root == str(tmp_path)
    assert settings.grpc_port == 9300
    assert settings.http_port == 9400
    assert settings.metrics_port == 9500
    assert settings.log_level == "DEBUG"


def test_load_server_settings_bad_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORE_HTTP_PORT", "not-a-port")
    with pytest.raises(ConfigurationError) as caught:
        load_server_settings(tmp_path, {})
    assert "CORE_" in caught.value.message
    assert "http_port" in caught.value.message


def test_load_server_settings_bad_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "settings.json", "{broken")
    with pytest.raises(ConfigurationError) as caught:
        load_server_settings(tmp_path, {})
    assert str(path) in caught.value.message


def test_numeric_version_is_taken_as_a_string(tmp_path: Path) -> None:
    path = tmp_path / "model-settings.json"
    path.write_text('{"name": "m", "implementation": "sklearn", "parameters": {"version": 2}}')
    assert load_settings_file(ModelSettings, path).version == "2"


def test_importing_core_does_not_import_the_server() -> None:
    import subprocess
    import sys

    code = "import sys, core, core.codecs, core.types; print('fastapi' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_observability_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    defaults = Settings()
    assert defaults.metrics_endpoint == "/metrics"
    assert (defaults.metrics_dir, defaults.metrics_rest_server_prefix) == (None, "rest_server")
    assert (defaults.log_format, defaults.logging_settings, defaults.access_log_format) == (
        "text",
        None,
        None,
    )
    assert defaults.enable_latency_logging is False
    assert defaults.tracing_enabled is None
    # null in a file, an empty variable: metrics off
    file_settings = load_settings_file(
        Settings, write_json(tmp_path / "settings.json", {"metrics_endpoint": None})
    )
    assert file_settings.metrics_endpoint is None
    monkeypatch.setenv("CORE_METRICS_ENDPOINT", "")
    monkeypatch.setenv("CORE_LOGGING_SETTINGS", '{"version": 1}')
    monkeypatch.setenv("CORE_TRACING_ENABLED", "true")
    settings = Settings()
    assert settings.metrics_endpoint is None
    assert settings.logging_settings == {"version": 1}
    assert settings.tracing_enabled is True
    monkeypatch.setenv("CORE_LOGGING_SETTINGS", "/etc/core/logging.yaml")
    assert Settings().logging_settings == "/etc/core/logging.yaml"
    with pytest.raises(ConfigurationError, match="log_format"):
        load_server_settings(tmp_path, {"log_format": "xml"})
