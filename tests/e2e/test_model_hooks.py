"""KServe-style `preprocess` / `postprocess` hooks of a `Model`, end to end:
over REST with JSON (httpx) and binary tensors (tritonclient.http), over
gRPC (tritonclient.grpc) and REST streaming; with the models in the server
process and in two worker processes; with adaptive batching (each request
preprocessed alone before it joins a batch, its part of the batch's
response postprocessed alone); the hooks' time in the
`request_preprocess_seconds` / `request_postprocess_seconds` metrics; a hook
that raises is the request's error, and the server keeps serving."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from core import Model
from core.testing import ServerProcess, check_outputs

HOOKS_MODELS_PY = textwrap.dedent(
    '''
    """Runtimes with hooks, for the hook tests."""

    import asyncio

    from core import BadRequest, Model
    from core.types import (
        InferenceRequest,
        InferenceResponse,
        RequestInput,
        RequestOutput,
        ResponseOutput,
        to_ndarray,
    )


    class Scaled(Model):
        """preprocess: a new request whose `input-0` is the client's times the
        `x-scale` header (10 without it), asking for `raw` where the client
        asked for `total`; a negative input is a 400.
        predict: `raw`, each row's sum, and `batch_rows`, the rows of the
        call (more than a request's own when batching merged it); only the
        requested ones when some are named.
        postprocess: `raw` renamed `total`; a total over 1e6 raises."""

        async def preprocess(self, payload, headers):
            array = to_ndarray(payload.inputs[0])
            if (array < 0).any():
                raise BadRequest("negative input refused by preprocess")
            scale = float(headers.get("x-scale", "10"))
            scaled = (array.astype("float64") * scale).ravel().tolist()
            tensor = RequestInput(name="input-0", shape=list(array.shape), datatype="FP64", data=scaled)
            outputs = None
            if payload.outputs:
                outputs = [
                    RequestOutput(name="raw" if output.name == "total" else output.name)
                    for output in payload.outputs
                ]
            return InferenceRequest(inputs=[tensor], outputs=outputs)

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            array = to_ndarray(payload.inputs[0])
            rows = array.shape[0]
            outputs = [
                ResponseOutput(name="raw", shape=[rows], datatype="FP64", data=array.sum(axis=1).tolist()),
                ResponseOutput(name="batch_rows", shape=[rows], datatype="INT64", data=[rows] * rows),
            ]
            if payload.outputs:
                wanted = {output.name for output in payload.outputs}
                outputs = [output for output in outputs if output.name in wanted]
            return InferenceResponse(model_name=self.name, outputs=outputs)

        async def postprocess(self, response, headers):
            for output in response.outputs:
                if output.name == "raw":
                    if (to_ndarray(output) > 1e6).any():
                        raise ValueError("total too large for postprocess")
                    output.name = "total"
            return response


    class SlowHooks(Scaled):
        """Scaled, whose hooks take 50 ms (preprocess) and 30 ms (postprocess)."""

        async def preprocess(self, payload, headers):
            await asyncio.sleep(0.05)
            return await super().preprocess(payload, headers)

        async def postprocess(self, response, headers):
            await asyncio.sleep(0.03)
            return await super().postprocess(response, headers)
    '''
)

PREPROCESS_SLEEP = 0.05
POSTPROCESS_SLEEP = 0.03


def write_hooks_model(root: Path, name: str, implementation: str, **fields: Any) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    settings = {"name": name, "implementation": implementation, **fields}
    (folder / "model-settings.json").write_text(json.dumps(settings))
    (folder / "models.py").write_text(HOOKS_MODELS_PY)


@pytest.fixture(scope="module")
def hooks_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hooks")
    write_hooks_model(root, "scaled", "models.Scaled")
    # Batches of 4: in process, four requests sent at once fill one batch;
    # through two workers, each worker's batch gets two of them.
    write_hooks_model(root, "scaled-batched", "models.Scaled", max_batch_size=4, max_batch_time=1.0)
    write_hooks_model(root, "slow-hooks", "models.SlowHooks", parameters={"version": "3"})
    return root


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "2-workers"])
def hooks_server(hooks_repository: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(hooks_repository, env={"CORE_PARALLEL_WORKERS": str(request.param)}) as process:
        yield process


@pytest.fixture(scope="module")
def http(hooks_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hooks_server.url, timeout=30) as client:
        yield client


ROWS = np.array([[1.0, 2.0, 3.0], [0.5, 0.25, 0.125]], dtype=np.float32)


def json_body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}]
    }


def outputs_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {output["name"]: output["data"] for output in response.json()["outputs"]}


def test_the_base_class_hooks_are_never_called() -> None:
    # Found when a class is defined: the dataplane calls no hook a model leaves as is.
    class Plain(Model):
        pass

    class Hooked(Model):
        async def postprocess(self, response: Any, headers: dict[str, str]) -> Any:
            return response

    assert not Model.runs_preprocess and not Model.runs_postprocess
    assert not Plain.runs_preprocess and not Plain.runs_postprocess
    assert not Hooked.runs_preprocess and Hooked.runs_postprocess


@pytest.mark.parametrize("model", ["scaled", "scaled-batched"])
def test_hooks_run_on_every_transport(hooks_server: ServerProcess, model: str) -> None:
    # REST JSON, REST binary tensors, gRPC: the input scaled by preprocess,
    # `raw` renamed `total` by postprocess.
    check_outputs(hooks_server, model, ROWS, {"total": (ROWS.astype(np.float64) * 10).sum(axis=1)})


def test_hooks_get_the_request_headers(hooks_server: ServerProcess, http: httpx.Client) -> None:
    expected = (ROWS.astype(np.float64) * 3).sum(axis=1)
    response = http.post("/v2/models/scaled/infer", json=json_body(ROWS), headers={"x-scale": "3"})
    np.testing.assert_allclose(outputs_of(response)["total"], expected)

    tensor = triton_http.InferInput("input-0", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=True)
    with triton_http.InferenceServerClient(f"127.0.0.1:{hooks_server.http_port}") as client:
        result = client.infer("scaled", [tensor], headers={"x-scale": "3"})
    np.testing.assert_allclose(result.as_numpy("total"), expected)

    tensor = triton_grpc.InferInput("input-0", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS)
    with triton_grpc.InferenceServerClient(f"127.0.0.1:{hooks_server.grpc_port}") as client:
        reply = client.infer("scaled", [tensor], headers={"x-scale": "3"})
    np.testing.assert_allclose(reply.as_numpy("total"), expected)


def test_the_response_keeps_the_clients_request_id(http: httpx.Client) -> None:
    # preprocess made a new request without an id: the answer still carries the client's.
    response = http.post("/v2/models/scaled/infer", json={**json_body(ROWS), "id": "hooked-1"})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "hooked-1"
    assert response.json()["model_name"] == "scaled"


def test_batching_merges_preprocessed_requests_and_splits_before_postprocess(http: httpx.Client) -> None:
    # Four requests at once, of different rows: each is preprocessed alone,
    # merged with others into one call of predict, and its own rows of the
    # batch's answer postprocessed alone.
    def call(n: int) -> httpx.Response:
        rows = np.full((n % 2 + 1, 3), n + 1, dtype=np.float32)
        return http.post("/v2/models/scaled-batched/infer", json={**json_body(rows), "id": f"b-{n}"})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(call, range(4)))
    for n, response in enumerate(responses):
        outputs = outputs_of(response)
        rows = n % 2 + 1
        assert response.json()["id"] == f"b-{n}"
        assert outputs["total"] == [30.0 * (n + 1)] * rows
        assert len(outputs["batch_rows"]) == rows
        assert outputs["batch_rows"][0] > rows, f"request {n} was not merged with another: {outputs}"


def test_infer_stream_runs_the_hooks(http: httpx.Client) -> None:
    response = http.post("/v2/models/scaled/infer_stream", json=json_body(ROWS))
    assert response.status_code == 200, response.text
    events = [
        json.loads(line[len("data: ") :]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    assert len(events) == 1, events
    outputs = {output["name"]: output["data"] for output in events[0]["outputs"]}
    np.testing.assert_allclose(outputs["total"], (ROWS.astype(np.float64) * 10).sum(axis=1))


def test_a_bad_request_raised_by_preprocess_is_a_400(hooks_server: ServerProcess, http: httpx.Client) -> None:
    negative = -ROWS
    response = http.post("/v2/models/scaled/infer", json=json_body(negative))
    assert response.status_code == 400
    assert response.json() == {"error": "negative input refused by preprocess"}

    tensor = triton_grpc.InferInput("input-0", list(negative.shape), "FP32")
    tensor.set_data_from_numpy(negative)
    with (
        triton_grpc.InferenceServerClient(f"127.0.0.1:{hooks_server.grpc_port}") as client,
        pytest.raises(InferenceServerException) as raised,
    ):
        client.infer("scaled", [tensor])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "negative input refused by preprocess" in raised.value.message()

    # Batched: refused alone, before it joins a batch.
    response = http.post("/v2/models/scaled-batched/infer", json=json_body(negative))
    assert response.status_code == 400
    # The server goes on serving.
    np.testing.assert_allclose(
        outputs_of(http.post("/v2/models/scaled/infer", json=json_body(ROWS)))["total"], [60, 8.75]
    )


def test_an_exception_in_postprocess_is_a_500_naming_the_hook(http: httpx.Client) -> None:
    huge = np.array([[1e6, 0, 0]], dtype=np.float32)
    response = http.post("/v2/models/scaled/infer", json=json_body(huge))
    assert response.status_code == 500
    assert response.json() == {
        "error": "model 'scaled' failed in postprocess: ValueError: total too large for postprocess"
    }
    assert http.get("/v2/health/ready").status_code == 200
    assert outputs_of(http.post("/v2/models/scaled/infer", json=json_body(ROWS)))["total"] == [60.0, 8.75]


class Scrape:
    def __init__(self, server: ServerProcess) -> None:
        response = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10)
        assert response.status_code == 200
        self.samples = [
            sample for family in text_string_to_metric_families(response.text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())


def test_metrics_hold_the_hooks_time(hooks_server: ServerProcess, http: httpx.Client) -> None:
    labels = {"model_name": "slow-hooks", "model_version": "3"}
    before = Scrape(hooks_server)
    for _ in range(3):
        assert outputs_of(http.post("/v2/models/slow-hooks/infer", json=json_body(ROWS)))["total"] == [
            60.0,
            8.75,
        ]
    tensor = triton_grpc.InferInput("input-0", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS)
    with triton_grpc.InferenceServerClient(f"127.0.0.1:{hooks_server.grpc_port}") as client:
        for _ in range(2):
            client.infer("slow-hooks", [tensor])
    # A REST stream: the hooks' own time, without arrival and departure.
    assert http.post("/v2/models/slow-hooks/infer_stream", json=json_body(ROWS)).status_code == 200
    after = Scrape(hooks_server)

    def delta(name: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    requests = 6
    for step in ("preprocess", "predict", "postprocess"):
        assert delta(f"request_{step}_seconds_count") == requests, step
    assert delta("model_infer_request_success_total") == requests
    # Lower bounds, each the hooks' sleeps: the hooks' time is in their steps...
    assert delta("request_preprocess_seconds_sum") >= requests * PREPROCESS_SLEEP
    assert delta("request_postprocess_seconds_sum") >= requests * POSTPROCESS_SLEEP
    # ... and not in predict's (a sum of microseconds, far below one sleep each).
    assert delta("request_predict_seconds_sum") < requests * POSTPROCESS_SLEEP
