"""Transformer mode end to end: a core server whose models name a predictor
(`predictor_url`), chained to a second core server that serves the iris
scikit-learn model. Over a REST and a gRPC predictor URL, with the
transformer's models in the server process and in two workers: answers
equal scikit-learn's on every front transport; a transformer with no
`implementation` forwards alone; the request id and KServe's forwarded
headers reach the predictor, other headers do not; a predictor's 4xx is
passed on with its status and message; a predictor that is down is a
502/503 naming its address, at once, and a slow one a 504 once
`predictor_timeout` has passed; batching in the transformer; and
examples/transformer."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from core.errors import ConfigurationError
from core.settings import ModelSettings, build_settings
from core.testing import ServerProcess, check_outputs, free_port

from .conftest import Iris, iris_settings, write_model

PREDICTOR_MODELS_PY = textwrap.dedent(
    '''
    import asyncio
    import json

    from core import Model
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput


    class Headers(Model):
        """Output `headers`: the request headers it got, as JSON."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            headers = payload.parameters.headers if payload.parameters else None
            text = json.dumps(headers or {})
            output = ResponseOutput(name="headers", shape=[1], datatype="BYTES", data=[text])
            return InferenceResponse(model_name=self.name, outputs=[output])


    class Slow(Model):
        """Answers after 5 s."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            await asyncio.sleep(5)
            return InferenceResponse(model_name=self.name, outputs=[])
    '''
)

TRANSFORMER_MODELS_PY = textwrap.dedent(
    '''
    from core import Model
    from core.types import InferenceRequest, RequestInput, RequestOutput, to_ndarray

    # The client's output names, and the predictor's.
    RENAMES = {"species": "predict", "probabilities": "predict_proba"}
    BACK = {predictor: client for client, predictor in RENAMES.items()}


    class IrisTransformer(Model):
        """The client sends `measurements` in millimetres and asks for
        `species` and `probabilities`; the predictor's iris model takes
        `input-0` in centimetres and answers `predict` and `predict_proba`.
        Only hooks: `predict` is the base class's, forwarding."""

        async def preprocess(self, payload: InferenceRequest, headers: dict) -> InferenceRequest:
            centimetres = to_ndarray(payload.inputs[0]).astype("float32") / 10
            tensor = RequestInput(
                name="input-0",
                shape=list(centimetres.shape),
                datatype="FP32",
                data=centimetres.ravel().tolist(),
            )
            outputs = None
            if payload.outputs:
                outputs = [RequestOutput(name=RENAMES.get(o.name, o.name)) for o in payload.outputs]
            return InferenceRequest(inputs=[tensor], outputs=outputs)

        async def postprocess(self, response, headers):
            for output in response.outputs:
                output.name = BACK.get(output.name, output.name)
            return response
    '''
)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory, iris: Iris) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("predictor")
    write_model(root / "iris", iris_settings("iris"), iris.classifier)
    folder = root / "headers"
    folder.mkdir()
    (folder / "model-settings.json").write_text(
        json.dumps({"name": "headers", "implementation": "models.Headers"})
    )
    (folder / "models.py").write_text(PREDICTOR_MODELS_PY)
    folder = root / "slow"
    folder.mkdir()
    (folder / "model-settings.json").write_text(json.dumps({"name": "slow", "implementation": "models.Slow"}))
    (folder / "models.py").write_text(PREDICTOR_MODELS_PY)
    with ServerProcess(root, env={"CORE_PARALLEL_WORKERS": "0"}) as process:
        yield process


# Nothing listens there while the tests run (bound by no one: connections are refused).
DOWN_PORT = free_port()


def transformer_model(
    root: Path, name: str, url: str, implementation: str | None = None, **fields: Any
) -> None:
    folder = root / name
    folder.mkdir()
    settings: dict[str, Any] = {"name": name, "predictor_url": url, **fields}
    if implementation is not None:
        settings["implementation"] = implementation
        (folder / "models.py").write_text(TRANSFORMER_MODELS_PY)
    (folder / "model-settings.json").write_text(json.dumps(settings))


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "2-workers"])
def transformer(
    tmp_path_factory: pytest.TempPathFactory, predictor: ServerProcess, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("transformer")
    rest = predictor.url
    grpc = f"grpc://127.0.0.1:{predictor.grpc_port}"
    # Named as the predictor's model: predictor_model may be left out.
    transformer_model(root, "iris", rest, "models.IrisTransformer")
    transformer_model(root, "iris-grpc", grpc, "models.IrisTransformer", predictor_model="iris")
    # No implementation: forwarding alone.
    transformer_model(root, "forward-rest", rest, predictor_model="iris")
    transformer_model(root, "forward-grpc", grpc, predictor_model="iris")
    # Batched: the merged batch goes to the predictor in one request.
    batching = {"max_batch_size": 8, "max_batch_time": 0.01}
    transformer_model(root, "batched-rest", rest, predictor_model="iris", **batching)
    transformer_model(root, "batched-grpc", grpc, predictor_model="iris", **batching)
    transformer_model(root, "headers-rest", rest, predictor_model="headers")
    transformer_model(root, "headers-grpc", grpc, predictor_model="headers")
    transformer_model(root, "ghost", rest, predictor_model="no-such-model")
    transformer_model(root, "slow-rest", rest, predictor_model="slow", predictor_timeout=0.5)
    transformer_model(root, "slow-grpc", grpc, predictor_model="slow", predictor_timeout=0.5)
    transformer_model(root, "down-rest", f"http://127.0.0.1:{DOWN_PORT}", predictor_model="iris")
    transformer_model(root, "down-grpc", f"grpc://127.0.0.1:{DOWN_PORT}", predictor_model="iris")
    with ServerProcess(root, env={"CORE_PARALLEL_WORKERS": str(request.param)}) as process:
        yield process


@pytest.fixture(scope="module")
def http(transformer: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=transformer.url, timeout=30) as client:
        yield client


def body(rows: np.ndarray, name: str = "input-0") -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}]}


@pytest.mark.parametrize("model", ["iris", "iris-grpc"])
def test_hooks_around_the_predictor_equal_scikit_learn(
    transformer: ServerProcess, iris: Iris, model: str
) -> None:
    millimetres = (iris.features[::10] * 10).astype(np.float32)
    centimetres = millimetres / np.float32(10)
    expected = {
        "species": iris.classifier.predict(centimetres),
        "probabilities": iris.classifier.predict_proba(centimetres),
    }
    check_outputs(transformer, model, millimetres, expected)


@pytest.mark.parametrize("model", ["forward-rest", "forward-grpc", "batched-rest", "batched-grpc"])
def test_a_transformer_without_implementation_forwards(
    transformer: ServerProcess, iris: Iris, model: str
) -> None:
    rows = iris.features[::7]
    expected = {
        "predict": iris.classifier.predict(rows),
        "predict_proba": iris.classifier.predict_proba(rows),
    }
    check_outputs(transformer, model, rows, expected)
    # The model's default output, and the answer as the transformer's own.
    response = httpx.post(f"{transformer.url}/v2/models/{model}/infer", json={**body(rows), "id": "t-1"})
    assert response.status_code == 200, response.text
    content = response.json()
    assert (content["id"], content["model_name"]) == ("t-1", model)
    assert [output["name"] for output in content["outputs"]] == ["predict"]


@pytest.mark.parametrize("model", ["batched-rest", "batched-grpc"])
def test_batched_requests_each_get_their_own_answer(http: httpx.Client, iris: Iris, model: str) -> None:
    def call(n: int) -> tuple[np.ndarray, httpx.Response]:
        rows = iris.features[n * 9 : n * 9 + n % 3 + 1]
        return rows, http.post(f"/v2/models/{model}/infer", json={**body(rows), "id": f"r-{n}"})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    for n, (rows, response) in enumerate(results):
        assert response.status_code == 200, response.text
        assert response.json()["id"] == f"r-{n}"
        assert response.json()["outputs"][0]["data"] == iris.classifier.predict(rows).tolist()


@pytest.mark.parametrize("model", ["headers-rest", "headers-grpc"])
def test_the_request_id_and_kserves_headers_are_forwarded(http: httpx.Client, model: str) -> None:
    sent = {
        "x-request-id": "rid-42",
        "authorization": "Bearer e2e",
        "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
        "x-not-forwarded": "secret",
    }
    text = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}
    response = http.post(f"/v2/models/{model}/infer", json=text, headers=sent)
    assert response.status_code == 200, response.text
    seen = json.loads(response.json()["outputs"][0]["data"][0])
    for name in ("x-request-id", "authorization", "x-b3-traceid"):
        assert seen.get(name) == sent[name], (name, seen)
    assert "x-not-forwarded" not in seen


@pytest.mark.parametrize("model", ["iris", "iris-grpc", "forward-rest", "forward-grpc"])
def test_a_predictors_400_is_passed_on(transformer: ServerProcess, http: httpx.Client, model: str) -> None:
    # Three features where the iris model takes four: the predictor's 400.
    rows = np.ones((2, 3), dtype=np.float32)
    name = "measurements" if model.startswith("iris") else "input-0"
    response = http.post(f"/v2/models/{model}/infer", json=body(rows, name))
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert "features" in message, message
    assert "the predictor at" in message, message

    tensor = triton_grpc.InferInput(name, list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    with (
        triton_grpc.InferenceServerClient(f"127.0.0.1:{transformer.grpc_port}") as client,
        pytest.raises(InferenceServerException) as raised,
    ):
        client.infer(model, [tensor])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "features" in raised.value.message()


def test_a_predictors_404_is_passed_on(http: httpx.Client, predictor: ServerProcess) -> None:
    response = http.post("/v2/models/ghost/infer", json=body(np.ones((1, 4), dtype=np.float32)))
    assert response.status_code == 404, response.text
    assert "no-such-model" in response.json()["error"]
    assert predictor.url in response.json()["error"]


@pytest.mark.parametrize(
    ("model", "url"),
    [("down-rest", f"http://127.0.0.1:{DOWN_PORT}"), ("down-grpc", f"grpc://127.0.0.1:{DOWN_PORT}")],
)
def test_a_predictor_that_is_down_is_a_502_or_503_at_once(
    transformer: ServerProcess, http: httpx.Client, model: str, url: str
) -> None:
    started = time.monotonic()
    response = http.post(f"/v2/models/{model}/infer", json=body(np.ones((1, 4), dtype=np.float32)))
    elapsed = time.monotonic() - started
    assert response.status_code in (502, 503), response.text
    assert url in response.json()["error"]
    assert elapsed < 10, f"took {elapsed:.1f} s"  # a bound that says "no hang", not a timing claim

    tensor = triton_grpc.InferInput("input-0", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    with (
        triton_grpc.InferenceServerClient(f"127.0.0.1:{transformer.grpc_port}") as client,
        pytest.raises(InferenceServerException) as raised,
    ):
        client.infer(model, [tensor])
    assert raised.value.status() == "StatusCode.UNAVAILABLE"
    assert url in raised.value.message()
    # The transformer stays ready (a predictor that is down is not its own failure) and serving.
    assert http.get("/v2/health/ready").status_code == 200
    assert (
        http.post("/v2/models/forward-rest/infer", json=body(np.ones((1, 4), dtype=np.float32))).status_code
        == 200
    )


EXAMPLE = Path(__file__).parents[2] / "examples" / "transformer"


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_the_example_transformer(tmp_path: Path, predictor: ServerProcess, iris: Iris, scheme: str) -> None:
    """examples/transformer, its predictor_url pointing at the test predictor."""
    folder = tmp_path / "transformer"
    folder.mkdir()
    settings = json.loads((EXAMPLE / "model-settings.json").read_text())
    port = predictor.http_port if scheme == "http" else predictor.grpc_port
    settings["predictor_url"] = f"{scheme}://127.0.0.1:{port}"
    (folder / "model-settings.json").write_text(json.dumps(settings))
    (folder / "models.py").write_text((EXAMPLE / "models.py").read_text())
    rows = iris.features[::5]
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    request = {
        "inputs": [
            {"name": name, "shape": [len(rows)], "datatype": "FP32", "data": rows[:, i].tolist()}
            for i, name in enumerate(names)
        ]
    }
    with ServerProcess(folder, env={"CORE_PARALLEL_WORKERS": "0"}) as server:
        response = httpx.post(f"{server.url}/v2/models/iris-species/infer", json=request, timeout=30)
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        assert output["name"] == "species"
        species = np.array(["setosa", "versicolor", "virginica"])
        assert output["data"] == species[iris.classifier.predict(rows)].tolist()
        missing = httpx.post(
            f"{server.url}/v2/models/iris-species/infer", json={"inputs": request["inputs"][:3]}
        )
        assert missing.status_code == 400
        assert "petal_width" in missing.json()["error"]


@pytest.mark.parametrize("model", ["slow-rest", "slow-grpc"])
def test_a_slow_predictor_is_a_504_after_predictor_timeout(http: httpx.Client, model: str) -> None:
    started = time.monotonic()
    response = http.post(f"/v2/models/{model}/infer", json=body(np.ones((1, 4), dtype=np.float32)))
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    message = response.json()["error"]
    assert "did not answer within predictor_timeout of 0.5 s" in message, message
    assert "the predictor at" in message
    assert elapsed < 4, f"took {elapsed:.1f} s"  # cut at predictor_timeout, not the predictor's 5 s


def test_predictor_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = build_settings(ModelSettings, {"name": "t", "predictor_url": "grpcs://host:443/"}, "test")
    assert (settings.predictor_url, settings.implementation) == ("grpcs://host:443", "core.Model")
    assert (settings.predictor_model, settings.predictor_timeout) == (None, 60.0)
    monkeypatch.setenv("CORE_MODEL_PREDICTOR_URL", "http://predictor:8080")
    monkeypatch.setenv("CORE_MODEL_PREDICTOR_TIMEOUT", "2.5")
    settings = build_settings(ModelSettings, {"name": "t", "implementation": "models.T"}, "test")
    assert (settings.predictor_url, settings.predictor_timeout) == ("http://predictor:8080", 2.5)
    assert settings.implementation == "models.T"
    for url in ("predictor:8080", "ftp://predictor", "http://"):
        with pytest.raises(ConfigurationError, match="field 'predictor_url'"):
            build_settings(ModelSettings, {"name": "t", "predictor_url": url}, "test")
