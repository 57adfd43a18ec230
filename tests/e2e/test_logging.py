"""Logging: JSON lines, latency lines naming the model and version, the
access log and its format, records of a runtime tagged with its model, the
log level in worker processes, and a logging configuration file."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from core.testing import ServerProcess

CHATTY_MODELS_PY = textwrap.dedent(
    """
    import logging

    from core import Model
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput, to_ndarray

    logger = logging.getLogger("e2e.chatty")


    class Chatty(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            rows = to_ndarray(payload.inputs[0]).shape[0]
            logger.info("predicting %d rows", rows)
            logger.debug("debug from predict")
            output = ResponseOutput(name="rows", shape=[1], datatype="INT64", data=[rows])
            return InferenceResponse(model_name=self.name, outputs=[output])
    """
)

# grpcio's C core writes its own lines to stderr (fork handlers, ...).
GRPC_NATIVE_LINE = re.compile(r"^[IWEF]\d{4} ")
ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, iris: Any, model_settings: Any) -> Path:
    root = tmp_path_factory.mktemp("logging-models")
    (root / "iris").mkdir()
    (root / "iris" / "model-settings.json").write_text(json.dumps(model_settings("iris", version="1")))
    joblib.dump(iris.classifier, root / "iris" / "model.joblib")
    (root / "chatty").mkdir()
    (root / "chatty" / "models.py").write_text(CHATTY_MODELS_PY)
    (root / "chatty" / "model-settings.json").write_text(
        json.dumps({"name": "chatty", "implementation": "models.Chatty", "parameters": {"version": "v2"}})
    )
    return root


def send_traffic(server: ServerProcess) -> None:
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ROW.tolist()}]}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/v2/models/iris/infer", json=body).status_code == 200
        assert http.post("/v2/models/chatty/infer", json=body).status_code == 200
    tensor = triton_grpc.InferInput("input-0", [1, 4], "FP32")
    tensor.set_data_from_numpy(ROW)
    triton_grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}").infer("iris", [tensor])


def json_records(output: str) -> list[dict[str, Any]]:
    records = []
    for line in output.splitlines():
        if not line.strip() or GRPC_NATIVE_LINE.match(line):
            continue
        records.append(json.loads(line))  # every other line is one JSON object
    return records


@pytest.mark.parametrize("workers", ["0", "2"])
def test_json_lines_latency_and_access_logs(repository: Path, workers: str) -> None:
    env = {
        "CORE_ENABLE_LATENCY_LOGGING": "true",
        "CORE_ACCESS_LOG": "true",
        "CORE_ACCESS_LOG_FORMAT": "access %(request_line)s -> %(status_code)s",
    }
    server = ServerProcess(repository, "--log-format", "json", "--parallel-workers", workers, env=env)
    with server:
        send_traffic(server)
    records = json_records(server.log())
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)

    latency = [record for record in records if record["logger"] == "core.latency"]
    iris = [record for record in latency if record["model_name"] == "iris"]
    assert len(iris) == 2  # REST and gRPC
    for record in iris:
        assert record["model_version"] == "1"
        assert record["total_ms"] >= record["predict_ms"] > 0
        assert {"preprocess_ms", "postprocess_ms"} <= record.keys()
        assert "model iris version 1: preprocess" in record["message"]
    assert [record["model_version"] for record in latency if record["model_name"] == "chatty"] == ["v2"]

    access = [record["message"] for record in records if record["logger"] == "uvicorn.access"]
    assert any(
        message.startswith("access POST /v2/models/iris/infer HTTP/1.1 -> 200") for message in access
    ), access

    chatty = [record for record in records if record["message"] == "predicting 1 rows"]
    assert len(chatty) == 1
    assert chatty[0]["model_name"] == "chatty"
    assert chatty[0]["model_version"] == "v2"
    assert chatty[0]["logger"] == "e2e.chatty"
    if workers != "0":
        assert chatty[0]["worker"] in ("0", "1")


def test_text_lines_name_the_model_and_the_level_applies_in_workers(repository: Path) -> None:
    env = {"CORE_ENABLE_LATENCY_LOGGING": "true"}
    server = ServerProcess(repository, "--log-level", "DEBUG", "--parallel-workers", "1", env=env)
    with server:
        send_traffic(server)
    log = server.log()
    assert re.search(r"\[worker 0\] \[DEBUG\] e2e\.chatty \[chatty:v2\]: debug from predict", log), log
    assert re.search(r"\[INFO\] e2e\.chatty \[chatty:v2\]: predicting 1 rows", log)
    latency = r"core\.latency \[iris:1\]: model iris version 1: preprocess [\d.]+ ms, predict [\d.]+ ms"
    assert len(re.findall(latency, log)) == 2


def test_info_level_keeps_debug_lines_out(repository: Path) -> None:
    server = ServerProcess(repository, "--parallel-workers", "1")
    with server:
        send_traffic(server)
    log = server.log()
    assert "predicting 1 rows" in log
    assert "debug from predict" not in log
    assert "core.latency" not in log  # latency logging is off by default


def test_logging_settings_file(repository: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "core.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(model_name)s|%(model_version)s|%(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"}
        },
        "root": {"level": "INFO", "handlers": ["file"]},
    }
    config_file = tmp_path / "logging.json"
    config_file.write_text(json.dumps(config))
    with ServerProcess(repository, env={"CORE_LOGGING_SETTINGS": str(config_file)}) as server:
        send_traffic(server)
    lines = log_file.read_text().splitlines()
    assert "chatty|v2|predicting 1 rows" in lines
    assert "||model 'iris' version 1 is ready" in lines  # outside any model call


def test_a_broken_logging_settings_file_is_named(repository: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "logging.yaml"
    config_file.write_text("handlers: [unclosed")
    server = ServerProcess(repository, env={"CORE_LOGGING_SETTINGS": str(config_file)})
    with pytest.raises(RuntimeError, match=r"logging\.yaml: cannot read this logging configuration"):
        server.start()


def test_uvicorn_process_lines_are_logged_once(repository: Path) -> None:
    """The inference and the metrics servers are both uvicorn servers of one
    process: "Started server process" (and its shutdown lines) once, not twice."""
    server = ServerProcess(repository, "--parallel-workers", "0")
    with server:
        pass
    log = server.log()
    for line in ("Started server process", "Shutting down", "Finished server process"):
        assert log.count(line) == 1, log
