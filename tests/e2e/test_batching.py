"""Adaptive batching end to end: a real server, concurrent httpx and
tritonclient (HTTP and gRPC) clients.

Most models here batch in lockstep: `max_batch_time` is a minute, so a batch
runs only once it holds `max_batch_size` requests. A test that sends exactly
that many requests at once knows which requests share a batch without any
timing, and the model reports what it saw (`batch_rows`, `batch_requests`,
`batch_tags`), so the tests prove requests were merged, and merged only with
their own kind."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from core.testing import ServerProcess

BATCH_MODELS_PY = textwrap.dedent(
    '''
    """The batched runtime of the batching tests."""

    import asyncio
    from pathlib import Path

    from core import Model
    from core.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput, to_ndarray


    def tensor(name, datatype, shape, data):
        return ResponseOutput(name=name, datatype=datatype, shape=shape, data=data)


    class BatchEcho(Model):
        """`doubled`: input `x` times 2; `row_id`: input `id`; `upper`: BYTES
        input `text` upper-cased; on every row, `batch_rows` (rows in this
        call) and `batch_requests` (requests merged, the length of the `tag`
        parameter list). The `tag` list goes back as a response parameter
        (each caller gets its own), and joined as `batch_tags` (every caller
        gets all), the request content type as `seen_content_type`. Only the requested
        outputs when some are named. A negative `x` raises; a `scalar`
        parameter makes the answer a scalar. With `parameters.extra.gate`,
        each call touches `<gate>/entered` and waits for `<gate>/release`."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            gate = self.settings.parameters.extra.get("gate")
            if gate:
                Path(gate, "entered").touch()
                while not Path(gate, "release").exists():
                    await asyncio.sleep(0.01)
            custom = (payload.parameters.model_extra if payload.parameters else None) or {}
            if custom.get("scalar"):
                return InferenceResponse(model_name=self.name, outputs=[tensor("total", "FP64", [], [1.0])])
            inputs = {tensor.name: tensor for tensor in payload.inputs}
            rows = payload.inputs[0].shape[0]
            outputs = []
            if "x" in inputs:
                x = to_ndarray(inputs["x"])
                if (x < 0).any():
                    raise ValueError("negative input")
                outputs.append(tensor("doubled", "FP64", list(x.shape), (x * 2).ravel().tolist()))
            if "id" in inputs:
                outputs.append(tensor("row_id", "INT64", [rows], to_ndarray(inputs["id"]).ravel().tolist()))
            if "text" in inputs:
                upper = [item.upper() for item in to_ndarray(inputs["text"]).ravel()]
                outputs.append(tensor("upper", "BYTES", inputs["text"].shape, upper))
            tags = custom.get("tag")
            requests = len(tags) if isinstance(tags, list) else 0
            outputs.append(tensor("batch_rows", "INT64", [rows], [rows] * rows))
            outputs.append(tensor("batch_requests", "INT64", [rows], [requests] * rows))
            if payload.outputs:
                wanted = [output.name for output in payload.outputs]
                outputs = [output for output in outputs if output.name in wanted]
            content_type = payload.parameters.content_type if payload.parameters else None
            joined = ",".join(tags) if isinstance(tags, list) else ""
            parameters = Parameters(tag=tags, batch_tags=joined, seen_content_type=content_type or "none")
            return InferenceResponse(model_name=self.name, parameters=parameters, outputs=outputs)
    '''
)


def batch_model(folder: Path, name: str, size: int, time: float = 60.0, **fields: Any) -> None:
    folder.mkdir(parents=True)
    settings = {
        "name": name,
        "implementation": "models.BatchEcho",
        "max_batch_size": size,
        "max_batch_time": time,
        **fields,
    }
    (folder / "model-settings.json").write_text(json.dumps(settings))
    (folder / "models.py").write_text(BATCH_MODELS_PY)


@pytest.fixture(scope="module", params=[0, 1], ids=["in-process", "1-worker"])
def batch_server(
    tmp_path_factory: pytest.TempPathFactory,
    iris: Any,
    model_folder: Any,
    model_settings: Any,
    request: pytest.FixtureRequest,
) -> Iterator[ServerProcess]:
    """Batching lives with the model instance: in the server process, or in
    the worker that holds it (one worker, so every request of a model reaches
    the same instance and the lockstep batches fill as they do in process)."""
    root = tmp_path_factory.mktemp("batching")
    for size in (4, 8):
        batch_model(root / f"lockstep{size}", f"lockstep{size}", size)
    for name in ("counted", "separate", "failing"):
        batch_model(root / name, name, 4)
    batch_model(root / "timed", "timed", 64, time=0.005)
    for name in ("gated-full", "gated-unload"):
        gate = root / f"{name}-gate"
        gate.mkdir()
        batch_model(root / name, name, 2, max_batch_queue_size=3, parameters={"extra": {"gate": str(gate)}})
    iris_batched = {**model_settings("iris-batched"), "max_batch_size": 4, "max_batch_time": 60}
    model_folder(root / "iris-batched", iris_batched, iris.classifier)
    with ServerProcess(root, env={"CORE_PARALLEL_WORKERS": str(request.param)}) as process:
        yield process


@pytest.fixture(scope="module")
def http(batch_server: ServerProcess) -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with httpx.Client(base_url=batch_server.url, timeout=30, limits=limits) as client:
        yield client


def x_body(
    values: list[list[float]],
    ids: list[int] | None = None,
    tag: str | None = None,
    outputs: list[str] | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = [
        {"name": "x", "shape": [len(values), len(values[0])], "datatype": "FP32", "data": values}
    ]
    if ids is not None:
        inputs.append({"name": "id", "shape": [len(ids)], "datatype": "INT64", "data": ids})
    body: dict[str, Any] = {"inputs": inputs}
    if tag is not None:
        parameters["tag"] = tag
    if parameters:
        body["parameters"] = parameters
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def outputs_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {output["name"]: output["data"] for output in response.json()["outputs"]}


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call concurrently, one thread each, and return the results in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_many_clients_each_get_their_own_rows(http: httpx.Client) -> None:
    # 64 requests of 1 to 3 rows: eight full batches of 8.
    def call(n: int) -> tuple[int, httpx.Response]:
        rows = n % 3 + 1
        values = [[n + r / 10, -(n + r / 10) + 1000] for r in range(rows)]
        ids = [n * 10 + r for r in range(rows)]
        body = {**x_body(values, ids, tag=f"caller-{n}"), "id": f"request-{n}"}
        return n, http.post("/v2/models/lockstep8/infer", json=body)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(64)))
    for n, response in results:
        rows = n % 3 + 1
        outputs = outputs_of(response)
        content = response.json()
        assert content["id"] == f"request-{n}"
        assert content["model_name"] == "lockstep8"
        expected = [[2 * (n + r / 10), 2 * (-(n + r / 10) + 1000)] for r in range(rows)]
        assert np.allclose(np.reshape(outputs["doubled"], (rows, 2)), expected, atol=1e-3)
        assert outputs["row_id"] == [n * 10 + r for r in range(rows)]
        assert outputs["batch_requests"] == [8] * rows
        assert content["parameters"]["tag"] == f"caller-{n}"
        shapes = {output["name"]: output["shape"] for output in content["outputs"]}
        assert shapes == {
            "doubled": [rows, 2],
            "row_id": [rows],
            "batch_rows": [rows],
            "batch_requests": [rows],
        }


def test_a_lone_request_runs_after_max_batch_time(http: httpx.Client) -> None:
    outputs = outputs_of(http.post("/v2/models/timed/infer", json=x_body([[1, 2]], tag="alone")))
    assert outputs["doubled"] == [2.0, 4.0]
    assert outputs["batch_requests"] == [1]


def test_requested_outputs_per_caller(http: httpx.Client) -> None:
    # Two kinds of caller, four of each, arriving mixed: each kind in a batch of its own.
    def call(n: int) -> httpx.Response:
        wanted = ["doubled"] if n % 2 else ["row_id", "batch_requests"]
        return http.post("/v2/models/separate/infer", json=x_body([[n, n]], [n], tag=str(n), outputs=wanted))

    responses = at_once([lambda n=n: call(n) for n in range(8)])
    for n, response in enumerate(responses):
        outputs = outputs_of(response)
        if n % 2:
            assert outputs == {"doubled": [2.0 * n, 2.0 * n]}
        else:
            assert outputs == {"row_id": [n], "batch_requests": [4]}
        assert sorted(response.json()["parameters"]["batch_tags"].split(",")) == [
            str(m) for m in range(n % 2, 8, 2)
        ]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"values": [[1, 2, 3]]}, id="trailing-shape"),
        pytest.param({"parameters": {"content_type": "np"}}, id="content-type"),
        pytest.param({"parameters": {"extra_name": 1}}, id="parameter-names"),
        pytest.param({"datatype": "FP64"}, id="datatype"),
        pytest.param({"name": "text"}, id="input-name"),
    ],
)
def test_requests_that_cannot_merge_are_batched_separately(http: httpx.Client, other: dict[str, Any]) -> None:
    def plain(n: int) -> dict[str, Any]:
        return x_body([[n, n]], tag=f"plain-{n}")

    def different(n: int) -> dict[str, Any]:
        values = other.get("values", [[n, n]])
        body = x_body(values, tag=f"other-{n}", **other.get("parameters", {}))
        tensor = body["inputs"][0]
        tensor["datatype"] = other.get("datatype", "FP32")
        if other.get("name") == "text":
            tensor.update(name="text", datatype="BYTES", data=[f"t{n}"] * len(values[0]))
        return body

    bodies = [plain(n) if n % 2 else different(n) for n in range(8)]
    responses = at_once(
        [lambda body=body: http.post("/v2/models/separate/infer", json=body) for body in bodies]
    )
    for n, response in enumerate(responses):
        outputs = outputs_of(response)
        content = response.json()
        kind = "plain" if n % 2 else "other"
        assert content["parameters"]["tag"] == f"{kind}-{n}"
        # The four of its kind, and no other, in its batch.
        batch = sorted(content["parameters"]["batch_tags"].split(","))
        assert batch == [f"{kind}-{m}" for m in range(n % 2, 8, 2)]
        if n % 2:
            assert content["parameters"]["seen_content_type"] == "none"
            assert outputs["doubled"] == [2.0 * n, 2.0 * n]
        elif other.get("name") == "text":
            assert outputs["upper"] == [f"T{n}", f"T{n}"]
        elif "parameters" in other and "content_type" in other["parameters"]:
            assert content["parameters"]["seen_content_type"] == "np"


def test_a_model_error_fails_every_request_of_its_batch(http: httpx.Client) -> None:
    values = [[1, 1], [-1, 1], [2, 2], [3, 3]]  # one negative: the whole batch fails
    responses = at_once(
        [lambda v=v: http.post("/v2/models/failing/infer", json=x_body([v], tag="t")) for v in values]
    )
    for response in responses:
        assert response.status_code == 500
        assert response.json() == {"error": "model 'failing' failed: ValueError: negative input"}
    # The batcher keeps serving.
    fine = at_once(
        [lambda v=v: http.post("/v2/models/failing/infer", json=x_body([v])) for v in values[::2] * 2]
    )
    assert [response.status_code for response in fine] == [200] * 4


def test_an_output_without_the_batch_dimension_fails_every_request(http: httpx.Client) -> None:
    bodies = [x_body([[n, n]], scalar=True) for n in range(4)]
    responses = at_once(
        [lambda body=body: http.post("/v2/models/failing/infer", json=body) for body in bodies]
    )
    for response in responses:
        assert response.status_code == 500
        error = response.json()["error"]
        assert error.startswith(
            "model 'failing' returned output 'total' of shape [] for a batch of 4 requests"
        )


def test_statistics_count_batches_as_executions(http: httpx.Client) -> None:
    bodies = [x_body([[n, n]] * (n + 1)) for n in range(8)]  # 36 rows in 8 requests: 2 batches
    responses = at_once(
        [lambda body=body: http.post("/v2/models/counted/infer", json=body) for body in bodies]
    )
    assert [response.status_code for response in responses] == [200] * 8
    (stat,) = http.get("/v2/models/counted/stats").json()["model_stats"]
    assert stat["inference_count"] == 36
    assert stat["execution_count"] == 2
    assert stat["inference_stats"]["success"]["count"] == 8


def test_a_real_framework_model_batched(http: httpx.Client, iris: Any) -> None:
    rows = [iris.features[10 * k : 10 * k + 1 + k % 2] for k in range(4)]

    def call(features: np.ndarray) -> httpx.Response:
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(features.shape),
                    "datatype": "FP32",
                    "data": features.tolist(),
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
        return http.post("/v2/models/iris-batched/infer", json=body)

    responses = at_once([lambda features=features: call(features) for features in rows])
    for features, response in zip(rows, responses, strict=True):
        outputs = outputs_of(response)
        assert outputs["predict"] == iris.classifier.predict(features).tolist()
        assert np.allclose(
            np.reshape(outputs["predict_proba"], (-1, 3)), iris.classifier.predict_proba(features)
        )


# The queue bound and unloading, with a model that waits at a gate (a file)


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.01)


def fill_the_queue(
    http: httpx.Client, name: str, gate: Path, pool: ThreadPoolExecutor
) -> list[Future[httpx.Response]]:
    """A batch of two in the model (held at its gate) and three requests in
    its queue (which holds three): returns the five requests, once a sixth
    has been refused with 503, the proof that the queue is full. Of the
    queued ones, two make a full batch and one waits for a partner."""

    def call(n: int) -> httpx.Response:
        return http.post(f"/v2/models/{name}/infer", json=x_body([[n, n]]))

    running = [pool.submit(call, n) for n in range(2)]
    wait_for_file(gate / "entered")
    queued = [pool.submit(call, n) for n in range(2, 6)]
    # Whichever of the four came last is refused, at once.
    done, _ = wait(queued, timeout=30, return_when=FIRST_COMPLETED)
    (refused,) = done
    assert refused.result().status_code == 503
    assert refused.result().json() == {
        "error": f"model '{name}' is overloaded: its batch queue is full (3 requests waiting); retry later"
    }
    return running + [future for future in queued if future is not refused]


def batch_queue_metric(server: ServerProcess, model: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "batch_request_queue" and sample.labels.get("model_name") == model
    )


def test_a_full_queue_answers_503_and_the_server_keeps_serving(
    http: httpx.Client, batch_server: ServerProcess
) -> None:
    gate = batch_server.folder / "gated-full-gate"
    with ThreadPoolExecutor(8) as pool:
        waiting = fill_the_queue(http, "gated-full", gate, pool)
        # The queue's size is published (in whichever process holds the model).
        assert batch_queue_metric(batch_server, "gated-full") == 3
        (gate / "release").touch()
        # Two batches of two run; the last queued request waits for a partner
        # (the batch size is 2), which the queue now has room for.
        answered = as_completed(waiting, timeout=30)
        assert [next(answered).result().status_code for _ in range(4)] == [200] * 4
        waiting.append(pool.submit(http.post, "/v2/models/gated-full/infer", json=x_body([[9, 9]])))
        assert [future.result().status_code for future in waiting] == [200] * 6
    assert http.get("/v2/health/ready").status_code == 200


def test_unload_answers_the_queued_requests(http: httpx.Client, batch_server: ServerProcess) -> None:
    gate = batch_server.folder / "gated-unload-gate"
    with ThreadPoolExecutor(8) as pool:
        waiting = fill_the_queue(http, "gated-unload", gate, pool)
        # The last queued request would wait a minute for a partner: unloading runs it now.
        unloading = pool.submit(http.post, "/v2/repository/models/gated-unload/unload")
        (gate / "release").touch()
        assert unloading.result().status_code == 200
        responses = [future.result() for future in waiting]
    assert [response.status_code for response in responses] == [200] * 5
    assert http.post("/v2/models/gated-unload/infer", json=x_body([[1, 1]])).status_code == 404


# Other clients and transports


def test_tritonclient_http_binary_tensors(batch_server: ServerProcess) -> None:
    def call(n: int) -> dict[str, np.ndarray]:
        client = triton_http.InferenceServerClient(url=batch_server.url.removeprefix("http://"))
        try:
            x = triton_http.InferInput("x", [1, 2], "FP32")
            x.set_data_from_numpy(np.array([[n, n + 0.5]], dtype=np.float32))  # binary by default
            text = triton_http.InferInput("text", [1, 1], "BYTES")
            text.set_data_from_numpy(np.array([[f"caller {n}".encode()]], dtype=object))
            result = client.infer("lockstep4", [x, text], parameters={"tag": f"t{n}"})
            return {name: result.as_numpy(name) for name in ("doubled", "upper", "batch_requests")}
        finally:
            client.close()

    for n, outputs in enumerate(at_once([lambda n=n: call(n) for n in range(4)])):
        assert outputs["doubled"].tolist() == [[2 * n, 2 * n + 1]]
        assert outputs["upper"].tolist() == [[f"CALLER {n}".encode()]]
        assert outputs["batch_requests"].tolist() == [4]


def test_grpc_clients_each_get_their_own_rows(batch_server: ServerProcess) -> None:
    def call(n: int) -> tuple[Any, ...]:
        client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{batch_server.grpc_port}")
        try:
            x = triton_grpc.InferInput("x", [2, 2], "FP32")
            x.set_data_from_numpy(np.array([[n, 1], [2, n]], dtype=np.float32))
            ids = triton_grpc.InferInput("id", [2], "INT64")
            ids.set_data_from_numpy(np.array([n, -n], dtype=np.int64))
            text = triton_grpc.InferInput("text", [2, 1], "BYTES")
            text.set_data_from_numpy(np.array([[b"a%d" % n], [b"\xff"]], dtype=object))
            result = client.infer(
                "lockstep8", [x, ids, text], request_id=f"g{n}", parameters={"tag": f"t{n}"}
            )
            response = result.get_response()
            return (
                response.id,
                result.as_numpy("doubled").tolist(),
                result.as_numpy("row_id").tolist(),
                result.as_numpy("upper").tolist(),
                result.as_numpy("batch_rows").tolist(),
                response.parameters["tag"].string_param,
            )
        finally:
            client.close()

    for n, answer in enumerate(at_once([lambda n=n: call(n) for n in range(8)])):
        assert answer == (
            f"g{n}",
            [[2 * n, 2], [4, 2 * n]],
            [n, -n],
            [[b"A%d" % n], [b"\xff"]],
            [16, 16],
            f"t{n}",
        )


def test_grpc_model_error_fans_out(batch_server: ServerProcess) -> None:
    def call(value: float) -> str:
        client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{batch_server.grpc_port}")
        try:
            x = triton_grpc.InferInput("x", [1, 1], "FP32")
            x.set_data_from_numpy(np.array([[value]], dtype=np.float32))
            with pytest.raises(InferenceServerException) as raised:
                client.infer("failing", [x])
            return f"{raised.value.status()} {raised.value.message()}"
        finally:
            client.close()

    for message in at_once([lambda v=v: call(v) for v in (1, 2, -3, 4)]):
        assert message == "StatusCode.INTERNAL model 'failing' failed: ValueError: negative input"


# Settings from the environment


def test_batch_settings_from_the_environment(tmp_path: Path) -> None:
    folder = tmp_path / "from-env"
    folder.mkdir()
    (folder / "model-settings.json").write_text(
        json.dumps({"name": "from-env", "implementation": "models.BatchEcho"})
    )
    (folder / "models.py").write_text(BATCH_MODELS_PY)
    env = {"CORE_MODEL_MAX_BATCH_SIZE": "3", "CORE_MODEL_MAX_BATCH_TIME": "60"}
    with ServerProcess(tmp_path, env=env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/v2/models/from-env/config").json()["max_batch_size"] == 3
        responses = at_once(
            [
                lambda n=n: http.post("/v2/models/from-env/infer", json=x_body([[n, n]], tag=str(n)))
                for n in range(3)
            ]
        )
        for response in responses:
            assert outputs_of(response)["batch_requests"] == [3]
