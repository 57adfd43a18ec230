"""Fixtures of the end-to-end tests: model folders holding real scikit-learn
models trained here on the bundled iris data, custom runtimes in `models.py`
files, and real `core start` servers on loopback ports.

Servers are session-scoped and few:

- `server`: every good model (iris, two versions of `multi`, the `sklearn`
  alias, custom runtimes, scratch models for load/unload tests). Ready.
  Twice: in-process, and with two worker processes.
- `limited_server`: a good model next to models whose load fails, a
  settings.json (overridden by CLI flags) and CORE_* variables, among them a
  1000-byte request body limit. Never ready, by design.
"""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from core.testing import ServerProcess

# The custom runtimes: the same models.py is written next to each
# model-settings.json that names one of its classes.
MODELS_PY = textwrap.dedent(
    '''
    """Custom runtimes of the end-to-end tests."""

    import json
    import re

    from core import Model
    from core.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput, to_ndarray


    class Exploding(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            raise ValueError("boom")


    class HeaderEcho(Model):
        """Returns the value of the `x-e2e-echo` request header as output
        `header`, and asks for response header `X-E2E-Reply`."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            headers = payload.parameters.headers if payload.parameters else None
            value = (headers or {}).get("x-e2e-echo", "<missing>")
            # Framing headers the server must not take from a model.
            reply = {"X-E2E-Reply": f"pong-{value}", "Content-Length": "1"}
            reply["Inference-Header-Content-Length"] = "2"
            if "x-e2e-unencodable" in (headers or {}):
                reply["X-E2E-Reply"] = "\u20ac"
            return InferenceResponse(
                model_name=self.name,
                parameters=Parameters(headers=reply),
                outputs=[ResponseOutput(name="header", shape=[1], datatype="BYTES", data=[value])],
            )


    class Upper(Model):
        """Upper-cases BYTES input `text` (bytes.upper: binary-safe) into output `upper`."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            text = payload.inputs[0]
            upper = [item.upper() for item in to_ndarray(text).ravel()]
            return InferenceResponse(
                model_name=self.name,
                outputs=[ResponseOutput(name="upper", shape=text.shape, datatype="BYTES", data=upper)],
            )


    class Echo(Model):
        """Returns each input as the output of the same name (only the requested
        ones, when outputs are named), and output `seen`: the parameters the
        model received, as JSON, when requested or when no outputs are named."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            wanted = {output.name for output in payload.outputs or ()}
            outputs = []
            for tensor in payload.inputs:
                if wanted and tensor.name not in wanted:
                    continue
                array = to_ndarray(tensor)
                data = array.ravel().tolist() if array.dtype == object else array
                outputs.append(
                    ResponseOutput(name=tensor.name, shape=tensor.shape, datatype=tensor.datatype, data=data)
                )
            if not wanted or "seen" in wanted:
                def dump(parameters):
                    return parameters.model_dump(exclude_none=True) if parameters else None

                request = dump(payload.parameters) or {}
                request.pop("headers", None)
                seen = {
                    "request": request,
                    "inputs": {tensor.name: dump(tensor.parameters) for tensor in payload.inputs},
                    "outputs": {output.name: dump(output.parameters) for output in payload.outputs or ()},
                }
                text = [json.dumps(seen)]
                outputs.append(ResponseOutput(name="seen", shape=[1], datatype="BYTES", data=text))
            return InferenceResponse(model_name=self.name, outputs=outputs)


    class Tokens(Model):
        """Streams the words of its first input, one response per word (the
        separating spaces kept, so they concatenate back into the text), as
        output `text_output`. The word `explode` fails the stream there."""

        async def predict_stream(self, payloads):
            async for payload in payloads:
                text = to_ndarray(payload.inputs[0]).ravel()[0]
                text = text.decode() if isinstance(text, bytes) else str(text)
                for word in re.findall(r"\\s*\\S+", text):
                    if word.strip() == "explode":
                        raise RuntimeError("exploded mid-stream")
                    output = ResponseOutput(name="text_output", shape=[1], datatype="BYTES", data=[word])
                    yield InferenceResponse(model_name=self.name, outputs=[output])


    class FailingLoad(Model):
        async def load(self) -> bool:
            raise RuntimeError("cannot load on purpose")
    '''
)

IRIS_METADATA = {
    "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ],
}


@dataclass
class Iris:
    features: np.ndarray  # float32, as the server sees FP32 inputs
    labels: np.ndarray
    classifier: LogisticRegression  # served as `iris`, `iris-alias`, `multi` v2, ...
    stump: DecisionTreeClassifier  # served as `multi` v1


def write_model(
    folder: Path, settings: dict[str, Any], estimator: Any = None, models_py: bool = False
) -> Path:
    folder.mkdir(parents=True)
    (folder / "model-settings.json").write_text(json.dumps(settings))
    if estimator is not None:
        joblib.dump(estimator, folder / "model.joblib")
    if models_py:
        (folder / "models.py").write_text(MODELS_PY)
    return folder


def iris_settings(
    name: str, implementation: str = "core_sklearn.SKLearnModel", **parameters: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "implementation": implementation,
        "parameters": {"uri": "./model.joblib", **parameters},
        **IRIS_METADATA,
    }


def build_infer_body(rows: np.ndarray, outputs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}],
        **extra,
    }
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


@pytest.fixture(scope="session")
def infer_body() -> Any:
    """`infer_body(rows, outputs=None, **extra)`: an OIP JSON request for iris rows."""
    return build_infer_body


@pytest.fixture(scope="session")
def model_folder() -> Any:
    """`model_folder(folder, settings, estimator=None, models_py=False)`: writes a model folder."""
    return write_model


@pytest.fixture(scope="session")
def model_settings() -> Any:
    """`model_settings(name, implementation="core_sklearn.SKLearnModel", **parameters)`:
    the model-settings.json content of an iris model."""
    return iris_settings


@pytest.fixture(scope="session")
def iris() -> Iris:
    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=1000).fit(features, labels)
    # A one-split tree only ever predicts two classes: it disagrees with the
    # classifier on many rows, so the two versions of `multi` are told apart.
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, labels)
    # Trained on float64, as usual; requests carry FP32, so the expected
    # answers are computed on the same float32 rows.
    return Iris(features.astype(np.float32), labels, classifier, stump)


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory, iris: Iris) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_model(root / "iris", iris_settings("iris"), iris.classifier)
    write_model(root / "iris-alias", iris_settings("iris-alias", implementation="sklearn"), iris.classifier)
    write_model(root / "multi-v1", iris_settings("multi", version="1"), iris.stump)
    write_model(root / "multi-v2", iris_settings("multi", version="2"), iris.classifier)
    # Load/unload tests take these down and bring them back; nothing else uses them.
    write_model(root / "scratch-httpx", iris_settings("scratch-httpx"), iris.classifier)
    write_model(root / "scratch-triton", iris_settings("scratch-triton"), iris.classifier)
    write_model(root / "scratch-grpc", iris_settings("scratch-grpc"), iris.classifier)
    write_model(
        root / "exploding", {"name": "exploding", "implementation": "models.Exploding"}, models_py=True
    )
    write_model(
        root / "header-echo", {"name": "header-echo", "implementation": "models.HeaderEcho"}, models_py=True
    )
    write_model(root / "upper", {"name": "upper", "implementation": "models.Upper"}, models_py=True)
    write_model(root / "echo", {"name": "echo", "implementation": "models.Echo"}, models_py=True)
    write_model(root / "tokens", {"name": "tokens", "implementation": "models.Tokens"}, models_py=True)
    # One declared input: the model a raw body (Inference-Header-Content-Length 0) can go to.
    echo_bytes = {
        "name": "echo-bytes",
        "implementation": "models.Echo",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    }
    write_model(root / "echo-bytes", echo_bytes, models_py=True)
    return root


@pytest.fixture(scope="session", params=[0, 2], ids=["in-process", "2-workers"])
def server(model_repository: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """Every test of this server runs twice: with the models in the server
    process, and with them in two worker processes (everything must work
    the same through workers)."""
    with ServerProcess(model_repository, env={"CORE_PARALLEL_WORKERS": str(request.param)}) as process:
        yield process


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


# The server with failing models and a body limit.

LIMITED_SETTINGS_NAME = "name-from-settings-json"
LIMITED_BODY_SIZE = 1000


@dataclass
class LimitedServer:
    process: ServerProcess
    settings_json_port: int  # the http_port in settings.json, overridden by --http-port


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory, iris: Iris) -> Iterator[LimitedServer]:
    root = tmp_path_factory.mktemp("limited")
    write_model(root / "good", iris_settings("good"), iris.classifier)
    # The artifact named by parameters.uri is not there.
    write_model(root / "missing-artifact", iris_settings("missing-artifact", uri="./nope.joblib"))
    write_model(
        root / "load-raises", {"name": "load-raises", "implementation": "models.FailingLoad"}, models_py=True
    )
    # Held bound (not listening) while the server runs: nothing else takes the
    # port, and connecting to it is refused unless the server wrongly uses it.
    placeholder = socket.socket()
    placeholder.bind(("127.0.0.1", 0))
    settings_json_port = placeholder.getsockname()[1]
    (root / "settings.json").write_text(
        json.dumps({"http_port": settings_json_port, "server_name": LIMITED_SETTINGS_NAME})
    )
    env = {
        "CORE_MAX_REQUEST_BODY_SIZE": str(LIMITED_BODY_SIZE),
        # settings.json sets server_name too, and a settings file wins over the environment.
        "CORE_SERVER_NAME": "name-from-environment",
    }
    process = ServerProcess(root, env=env, wait_for="/v2/health/live")
    with placeholder, process:
        wait_until_loaded(process.url, {"good", "missing-artifact", "load-raises"})
        yield LimitedServer(process, settings_json_port)


def wait_until_loaded(url: str, names: set[str], timeout: float = 60.0) -> None:
    """Until each named model is READY or FAILED in the repository index."""
    deadline = time.monotonic() + timeout
    index: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        index = httpx.post(f"{url}/v2/repository/index", json={}).json()
        settled = {item["name"] for item in index if item["state"] in ("READY", "FAILED")}
        if names <= settled:
            return
        time.sleep(0.05)
    raise TimeoutError(f"models {sorted(names)} did not settle: {index}")


def wait_for(check: Any, timeout: float = 60.0) -> Any:
    """`check()` once it is truthy, polling; TimeoutError if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)
