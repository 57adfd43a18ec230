"""The `core` command: version, settings errors, and where settings come
from (settings.json, CORE_* variables, CLI flags on top)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import core
from core.testing import free_port

CORE = str(Path(sys.executable).with_name("core"))


def run(
    *command: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize("command", [[CORE], [sys.executable, "-m", "core"]], ids=["core", "python -m core"])
def test_version(command: list[str]) -> None:
    result = run(*command, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"core {core.__version__}"


def test_settings_file_with_a_wrong_type(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"http_port": "abc"}))
    result = run(CORE, "start", str(tmp_path))
    assert result.returncode != 0
    assert str(settings) in result.stderr
    assert "'http_port'" in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_variable_with_a_wrong_type(tmp_path: Path) -> None:
    result = run(CORE, "start", str(tmp_path), env={"CORE_HTTP_PORT": "abc"})
    assert result.returncode != 0
    assert "'http_port'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flag", "what"),
    [("--http-port", "HTTP port"), ("--grpc-port", "gRPC port"), ("--metrics-port", "metrics port")],
)
def test_a_port_in_use_stops_the_start_with_one_clear_error(tmp_path: Path, flag: str, what: str) -> None:
    # The holder sets SO_REUSEPORT, as a running gRPC server does: a second
    # server that set it too would bind as well and take half the connections.
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        ports = {"--http-port": free_port(), "--grpc-port": free_port(), "--metrics-port": free_port()}
        ports[flag] = taken
        options = [str(item) for pair in ports.items() for item in pair]
        result = run(CORE, "start", str(tmp_path), "--host", "127.0.0.1", *options)
    assert result.returncode == 1, result.stderr
    assert f"core: {what} 127.0.0.1:{taken} cannot be bound" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_folder_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    result = run(CORE, "start", str(missing))
    assert result.returncode == 2
    assert str(missing) in result.stderr


def test_cli_flag_overrides_settings_file(limited_server) -> None:
    # settings.json says http_port X; ServerProcess passed --http-port Y.
    process = limited_server.process
    assert process.http_port != limited_server.settings_json_port
    assert httpx.get(f"{process.url}/v2/health/live").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{limited_server.settings_json_port}/v2/health/live", timeout=2)


def test_settings_file_beats_environment(limited_server) -> None:
    # server_name is "name-from-settings-json" in settings.json and
    # "name-from-environment" in CORE_SERVER_NAME.
    response = httpx.get(f"{limited_server.process.url}/v2")
    assert response.json()["name"] == "name-from-settings-json"


def test_environment_variables_are_honoured(limited_server) -> None:
    # CORE_MAX_REQUEST_BODY_SIZE=1000, which settings.json does not set.
    url = f"{limited_server.process.url}/v2/models/good/infer"
    response = httpx.post(url, content=b"{" + b" " * 1000 + b"}")
    assert response.status_code == 413
    assert "1000" in response.json()["error"]
