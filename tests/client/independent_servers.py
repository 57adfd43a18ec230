"""Independent OIP servers for the client tests: a KServe ModelServer
(`kserve`) and an MLServer 1.7.1, each run from its own venv, made by
`python3 dev.py test` (`.venvs/kserve`, `.venvs/mlserver`), and serving
servers/linear.py's models ("iris", "spare", "strings") over REST and gRPC on
127.0.0.1 free ports.

What the two servers do, checked by hand (tritonclient, httpx, curl) and
relied on by test_independent_servers.py:

KServe ModelServer 0.21.0 (servers/kserve_server.py; numpy 2, 1 worker)
- Binds 0.0.0.0 (uvicorn) and [::] (gRPC) with no option: the script
  patches both to 127.0.0.1.
- Health: 200 with JSON bodies ({"live": true}, {"ready": true},
  {"name": m, "ready": true}); not ready 503; unknown model 404. gRPC
  ModelReady of an unknown model: NOT_FOUND, not `ready: false`.
- GET /v2: {"name": "kserve", "version": "0.21.0", "extensions":
  ["model_repository_extension"]} (binary_tensor_data not listed, though
  served). GET /v2/ answers 307 to /v2.
- Model metadata: "versions": null, "platform": "" (from the model's
  get_input_types / get_output_types).
- A REST body without `Content-Type: application/json` is taken as binary:
  400 "...'inference-header-content-length' header is missing" (plain
  tritonclient JSON requests, which send no Content-Type, fail so).
- Binary tensor extension: inputs and outputs (binary_data_output,
  per-output binary_data). A binary answer has Inference-Header-Content-Length
  but no Content-Type, chunked. Binary BYTES inputs are turned into JSON
  before the model sees them: non-UTF-8 elements get a 500.
- Requested outputs: KServe keeps only those in REST answers; over gRPC
  the model must (the script's models do). The model must also give the
  response an id (REST validates it as a string): the script echoes the
  request's or makes a uuid.
- gRPC: raw inputs get raw outputs (each with a `binary_data_size`
  parameter, even over gRPC), typed inputs typed outputs.
- Versions: REST .../versions/{v}/... answers 501 "Model versioning not
  supported yet."; gRPC ignores model_version.
- Repository: REST POST /v2/repository/models/{m}/load|unload (200
  {"name", "load"|"unload": true}; unload of an unknown model 404, failed
  load 503). KServe's ModelRepository.load is a stub: the script's makes
  the model anew. No /v2/repository/index (404). gRPC RepositoryModelLoad/
  Unload have model_name as field 1, where Triton's (and core's) layout
  has repository_name=1, model_name=2: a Triton-layout unload names ""
  (NOT_FOUND "Model with name  does not exist."), a load fails with
  UNKNOWN (an AttributeError inside KServe). No RepositoryIndex.
- No model config, statistics or infer_stream: REST 404 with FastAPI's
  {"detail": "Not Found"}, gRPC UNIMPLEMENTED.
- Errors: {"error": msg}; InvalidInput 400 (gRPC INVALID_ARGUMENT),
  ModelNotFound 404 (NOT_FOUND), ModelNotReady 503, NotImplementedError
  501, others 500. Invalid JSON: 422 {"detail": [...]}.

MLServer 1.7.1 (servers/mlserver_runtime.py; parallel_workers 0, debug off)
- Health and model ready: 200 with an empty body; unknown model 404
  {"error"}. gRPC ModelReady of an unknown model or version lets
  ModelNotFound escape: UNKNOWN "Unexpected <class
  'mlserver.errors.ModelNotFound'>...", not `ready: false`.
- GET /v2: {"name": "mlserver", "version": "1.7.1", "extensions": []};
  GET /v2/ answers 307 to /v2.
- Model metadata from model-settings.json, "versions": [], plus
  "parameters" ({} or the settings' content_type). gRPC sends those as
  ModelMetadataResponse field 6, a map of InferParameter, where OIP has
  `map<string, string> properties`: "strings" sets content_type "str" so
  the tests cover it (core's client ignores field 6).
- No binary tensor extension: every body is parsed as JSON. A binary body
  gets 422 when its raw tail happens to be UTF-8, else 500 (FastAPI fails
  to echo it in the 422), and uvicorn then closes the connection, so the
  next request on that keep-alive connection may fail (connection reset).
  A JSON body needs `Content-Type: application/json` too (else 422).
- Answers: no "model_version" key when unset, "parameters": {}; REST ids
  are echoed or made (a uuid), gRPC ids are the model's.
- gRPC: raw outputs only when the request had raw inputs, typed otherwise.
- mlserver.codecs.NumpyCodec would turn a 1-D output into [N, 1] and
  expects BYTES as one buffer: the runtime converts tensors itself.
- Versions: an unknown version is 404 / NOT_FOUND.
- Repository: REST POST /v2/repository/index needs a JSON body ({} or
  {"ready": true}; none: 422), states "READY"; load/unload answer an empty
  200, unknown model 404. gRPC: Triton's layout, but RepositoryIndex states
  are Python enum strings ("State.READY").
- No model config or statistics: REST 404 {"detail": "Not Found"}, gRPC
  UNIMPLEMENTED.
- infer_stream: REST POST /v2/models/{m}/infer_stream takes one request and
  answers server-sent events `data: {json}` (their parameters carry
  CloudEvents headers). gRPC ModelStreamInfer answers plain
  ModelInferResponse messages, not Triton's ModelStreamInferResponse: read
  as Triton's, a response's model_name (field 1) is its error_message. All
  responses of a gRPC stream carry the first request's id.
- Errors: {"error": msg}; MLServerError 400 (INVALID_ARGUMENT),
  ModelNotFound 404 (NOT_FOUND).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.testing import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
SERVERS = Path(__file__).resolve().parent / "servers"
BIN = "Scripts" if os.name == "nt" else "bin"
EXE = ".exe" if os.name == "nt" else ""

# name -> (the variable dev.py sets to the venv's python, the venv's folder)
ENVIRONMENTS = {
    "kserve": ("DEV_KSERVE_PYTHON", ROOT / ".venvs" / "kserve"),
    "mlserver": ("DEV_MLSERVER_PYTHON", ROOT / ".venvs" / "mlserver"),
}
STARTUP_TIMEOUT = 120.0  # seconds: imports of kserve / mlserver take a few on a busy machine


def environment_python(name: str) -> Path:
    """The python of the independent server's venv `name`. dev.py sets
    DEV_<NAME>_PYTHON when it runs pytest: then a missing interpreter fails
    the test. Otherwise (pytest run directly) the test is skipped unless
    `.venvs/<name>` is there."""
    variable, folder = ENVIRONMENTS[name]
    given = os.environ.get(variable)
    if given:
        if not Path(given).exists():
            pytest.fail(f"{variable}={given}: no such interpreter (dev.py test sets up {folder.name})")
        return Path(given)
    python = folder / BIN / f"python{EXE}"
    if not python.exists():
        pytest.skip(
            f"{folder.relative_to(ROOT)} missing: `python3 dev.py test` sets it up ({variable} unset)"
        )
    return python


class IndependentServer:
    """A server process of another implementation, on 127.0.0.1 free ports.
    Its output goes to `log_path` (a temporary file when None); log() reads it."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        http_port: int,
        grpc_port: int,
        log_path: Path | None = None,
    ):
        self.name = name
        self.command = command
        self.env = env
        self.cwd = cwd
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.url = f"http://127.0.0.1:{http_port}"  # for the REST clients
        self.grpc_url = f"127.0.0.1:{grpc_port}"  # for the gRPC clients
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_path
        # lives as long as the server
        self._log = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self.started_in: float | None = None  # seconds from start to ready

    def start(self, timeout: float = STARTUP_TIMEOUT) -> IndependentServer:
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            if self._rest_ready() and self._grpc_listening():
                self.started_in = time.monotonic() - started
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} not ready at {self.url} within {timeout} s:\n{self.log()}")

    def _rest_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _grpc_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1):
                return True
        except OSError:
            return False

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM by PID, SIGKILL after `timeout`."""
        return None if self.process is None else stop_process(self.process, timeout)

    def __enter__(self) -> IndependentServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        died = self.process is not None and self.process.poll() is not None
        self.stop()
        if died and exc_type is None:
            raise RuntimeError(
                f"{self.name} exited while in use, with {self.process.returncode}:\n{self.log()}"
            )


def _server_env() -> dict[str, str]:
    """The test's environment less what would leak into another venv's
    python (this venv's PYTHONPATH, VIRTUAL_ENV), with servers/ importable."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PYTHONPATH"] = str(SERVERS)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kserve_server(python: Path, log_path: Path | None = None) -> IndependentServer:
    """servers/kserve_server.py: kserve.ModelServer with "iris", "spare" and
    "strings", REST and gRPC."""
    http_port, grpc_port = free_port(), free_port()
    command = [
        str(python), str(SERVERS / "kserve_server.py"),
        "--http_port", str(http_port), "--grpc_port", str(grpc_port), "--enable_grpc", "true",
    ]  # fmt: skip
    return IndependentServer("kserve", command, _server_env(), SERVERS, http_port, grpc_port, log_path)


MLSERVER_MODELS = {
    "iris": "mlserver_runtime.LinearRuntime",
    "spare": "mlserver_runtime.LinearRuntime",
    "strings": "mlserver_runtime.StringRuntime",
}
MLSERVER_TENSORS = {
    "mlserver_runtime.LinearRuntime": {
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "scores", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
        ],
    },
    "mlserver_runtime.StringRuntime": {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "upper", "datatype": "BYTES", "shape": [-1]},
            {"name": "length", "datatype": "INT64", "shape": [-1]},
        ],
    },
}


def mlserver_server(python: Path, folder: Path, log_path: Path | None = None) -> IndependentServer:
    """`mlserver start FOLDER` with servers/mlserver_runtime.py's runtimes
    for "iris", "spare" and "strings", written into `folder`, REST and gRPC;
    models run in the server process (parallel_workers 0)."""
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    for name, implementation in MLSERVER_MODELS.items():
        (folder / name).mkdir()
        model = {"name": name, "implementation": implementation, **MLSERVER_TENSORS[implementation]}
        if name == "strings":
            # MLServer sends it in ModelMetadataResponse field 6, as a map of
            # InferParameter, where OIP has a map of strings (`properties`)
            model["parameters"] = {"content_type": "str"}
        (folder / name / "model-settings.json").write_text(json.dumps(model))
    command = [str(python.parent / f"mlserver{EXE}"), "start", str(folder)]
    return IndependentServer("mlserver", command, _server_env(), folder, http_port, grpc_port, log_path)


@contextmanager
def running_kserve(log_path: Path | None = None) -> Iterator[IndependentServer]:
    """A started KServe ModelServer (skips or fails as environment_python)."""
    with kserve_server(environment_python("kserve"), log_path) as server:
        yield server


@contextmanager
def running_mlserver(log_path: Path | None = None) -> Iterator[IndependentServer]:
    """A started MLServer (skips or fails as environment_python)."""
    python = environment_python("mlserver")
    with (
        tempfile.TemporaryDirectory(prefix="mlserver-") as folder,
        mlserver_server(python, Path(folder), log_path) as server,
    ):
        yield server
