"""The metrics endpoint, scraped and parsed with prometheus_client's parser
after real traffic over REST (httpx) and gRPC (tritonclient): the counts
match the requests sent, in the server process and through two workers;
custom metrics of a runtime (counter, gauge, histogram); a killed worker's
files leave the metrics folder while its counts stay; `metrics_endpoint:
null` turns the endpoint off."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from prometheus_client.parser import text_string_to_metric_families

from core.testing import ServerProcess

from .conftest import wait_for

METRICS_MODELS_PY = textwrap.dedent(
    '''
    import os

    import core
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput, to_ndarray


    class Metered(core.Model):
        """Logs custom metrics for each request: the rows it got (a counter),
        the rows of the last request (a gauge, the highest over replicas),
        and, unregistered, rows per request (a histogram). Answers its pid."""

        async def load(self) -> bool:
            core.register("e2e_rows", "Rows received.", kind="counter")
            core.register(
                "e2e_last_rows", "Rows of the last request.", kind="gauge", multiprocess_mode="livemax"
            )
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            rows = to_ndarray(payload.inputs[0]).shape[0]
            core.log(e2e_rows=rows, e2e_last_rows=rows, e2e_request_rows=rows)
            pid = ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()])
            return InferenceResponse(model_name=self.name, outputs=[pid])


    class Exploding(core.Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            raise ValueError("boom")
    '''
)

INFER_ROUTE = "/v2/models/{name}/infer"


def write_model(root: Path, name: str, settings: dict[str, Any], models_py: bool = False) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model-settings.json").write_text(json.dumps({"name": name, **settings}))
    if models_py:
        (folder / "models.py").write_text(METRICS_MODELS_PY)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, iris: Any, model_settings: Any) -> Path:
    import joblib

    root = tmp_path_factory.mktemp("metrics-models")
    write_model(root, "iris", model_settings("iris", version="1"))
    joblib.dump(iris.classifier, root / "iris" / "model.joblib")
    write_model(root, "metered", {"implementation": "models.Metered", "parameters": {"version": "7"}}, True)
    write_model(root, "exploding", {"implementation": "models.Exploding"}, True)
    return root


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "2-workers"])
def metrics_server(repository: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    workers = str(request.param)
    with ServerProcess(repository, "--parallel-workers", workers) as process:
        yield process


class Scrape:
    """One scrape of the metrics endpoint, parsed."""

    def __init__(self, server: ServerProcess) -> None:
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        self.families = {family.name: family for family in text_string_to_metric_families(response.text)}

    def value(self, sample_name: str, **labels: str) -> float:
        """The sum of the samples of that name whose labels include `labels` (0 if none)."""
        family_name = sample_name
        for suffix in ("_total", "_count", "_sum", "_bucket"):
            if sample_name.endswith(suffix) and sample_name[: -len(suffix)] in self.families:
                family_name = sample_name[: -len(suffix)]
        family = self.families.get(family_name)
        if family is None:
            return 0.0
        return sum(
            sample.value
            for sample in family.samples
            if sample.name == sample_name and labels.items() <= sample.labels.items()
        )

    def type_of(self, family: str) -> str:
        return str(self.families[family].type)


def rows(count: int) -> np.ndarray:
    return np.tile(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32), (count, 1))


def rest_infer(http: httpx.Client, model: str, data: np.ndarray) -> httpx.Response:
    body = {
        "inputs": [{"name": "input-0", "shape": list(data.shape), "datatype": "FP32", "data": data.tolist()}]
    }
    return http.post(f"/v2/models/{model}/infer", json=body)


def grpc_infer(client: triton_grpc.InferenceServerClient, model: str, data: np.ndarray) -> Any:
    tensor = triton_grpc.InferInput("input-0", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    return client.infer(model, [tensor])


def test_counts_match_the_requests_sent_over_rest_and_grpc(metrics_server: ServerProcess) -> None:
    before = Scrape(metrics_server)
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{metrics_server.grpc_port}")
    with httpx.Client(base_url=metrics_server.url, timeout=30) as http:
        for _ in range(5):
            assert rest_infer(http, "iris", rows(1)).status_code == 200
        for _ in range(3):
            grpc_infer(grpc_client, "iris", rows(2))
        for _ in range(2):
            assert rest_infer(http, "exploding", rows(1)).status_code == 500
        with pytest.raises(Exception, match="boom"):
            grpc_infer(grpc_client, "exploding", rows(1))
        assert http.post("/v2/models/no-such-model/infer", json={}).status_code == 404
        assert http.get("/v2/models/iris").status_code == 200
    after = Scrape(metrics_server)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    iris = {"model_name": "iris", "model_version": "1"}
    exploding = {"model_name": "exploding", "model_version": ""}
    assert after.type_of("model_infer_request_success") == "counter"
    assert delta("model_infer_request_success_total", **iris) == 8
    assert delta("model_infer_request_failure_total", **iris) == 0
    assert delta("model_infer_request_failure_total", **exploding) == 3
    assert delta("model_infer_request_success_total", **exploding) == 0
    for step in ("request_preprocess_seconds", "request_predict_seconds", "request_postprocess_seconds"):
        assert after.type_of(step) == "histogram"
        assert delta(f"{step}_count", **iris) == 8, step
        assert delta(f"{step}_bucket", le="+Inf", **iris) == 8, step
    assert delta("request_predict_seconds_sum", **iris) > 0

    infer_ok = {"method": "POST", "path": INFER_ROUTE, "status_code": "200", "app_name": "core"}
    assert after.type_of("rest_server_requests") == "counter"
    assert delta("rest_server_requests_total", **infer_ok) == 5
    assert delta("rest_server_requests_duration_seconds_count", **infer_ok) == 5
    assert delta("rest_server_requests_total", path=INFER_ROUTE, status_code="500") == 2
    assert delta("rest_server_requests_total", path=INFER_ROUTE, status_code="404") == 1
    assert delta("rest_server_requests_total", path="/v2/models/{name}", status_code="200") == 1
    assert after.type_of("rest_server_requests_in_progress") == "gauge"
    # Route templates only: the raw paths never become label values.
    paths = {s.labels["path"] for s in after.families["rest_server_requests"].samples}
    assert not any("iris" in path or "no-such-model" in path for path in paths), paths

    model_infer = {"grpc_service": "inference.GRPCInferenceService", "grpc_method": "ModelInfer"}
    assert delta("grpc_server_started_total", grpc_type="UNARY", **model_infer) == 4
    assert delta("grpc_server_handled_total", grpc_code="OK", **model_infer) == 3
    assert delta("grpc_server_handled_total", grpc_code="INTERNAL", **model_infer) == 1
    assert delta("grpc_server_handling_seconds_count", **model_infer) == 4


def test_parallel_request_queue_has_one_gauge_per_worker(metrics_server: ServerProcess) -> None:
    scrape = Scrape(metrics_server)
    assert scrape.type_of("parallel_request_queue") == "gauge"
    samples = scrape.families["parallel_request_queue"].samples
    workers = int(metrics_server.command[metrics_server.command.index("--parallel-workers") + 1])
    assert sorted(sample.labels["worker"] for sample in samples) == [str(i) for i in range(workers)]
    # Nothing in flight between requests.
    assert all(sample.value == 0 for sample in samples)


def test_custom_metrics_of_a_runtime(metrics_server: ServerProcess) -> None:
    before = Scrape(metrics_server)
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{metrics_server.grpc_port}")
    with httpx.Client(base_url=metrics_server.url, timeout=30) as http:
        for count in (1, 4, 2):
            assert rest_infer(http, "metered", rows(count)).status_code == 200
        grpc_infer(grpc_client, "metered", rows(3))
    after = Scrape(metrics_server)
    metered = {"model_name": "metered", "model_version": "7"}

    assert after.type_of("e2e_rows") == "counter"
    assert after.value("e2e_rows_total", **metered) - before.value("e2e_rows_total", **metered) == 10
    assert after.type_of("e2e_last_rows") == "gauge"
    assert after.value("e2e_last_rows", **metered) == 3
    assert after.type_of("e2e_request_rows") == "histogram"
    observed = after.value("e2e_request_rows_count", **metered) - before.value(
        "e2e_request_rows_count", **metered
    )
    assert observed == 4
    assert (
        after.value("e2e_request_rows_sum", **metered) - before.value("e2e_request_rows_sum", **metered) == 10
    )
    assert after.value("e2e_request_rows_bucket", le="5.0", **metered) >= 4


def pid_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["outputs"][0]["data"][0])


def test_a_killed_workers_files_leave_the_metrics_folder_and_its_counts_stay(
    repository: Path, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "stale_999999.db").write_bytes(b"left by an earlier run")
    (metrics_dir / "keep.txt").write_text("not a metrics file")
    env = {"CORE_METRICS_DIR": str(metrics_dir)}
    with (
        ServerProcess(repository, "--parallel-workers", "2", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        # Emptied of metric files at start, and only of those.
        assert not (metrics_dir / "stale_999999.db").exists()
        assert (metrics_dir / "keep.txt").exists()
        victim = pid_of(rest_infer(http, "metered", rows(2)))
        for _ in range(3):
            pid_of(rest_infer(http, "metered", rows(2)))
        assert any(path.name.endswith(f"_{victim}.db") for path in metrics_dir.iterdir())
        before = Scrape(server)
        assert before.value("model_infer_request_success_total", model_name="metered") == 4
        assert before.value("e2e_rows_total", model_name="metered") == 8

        os.kill(victim, signal.SIGKILL)

        def victim_files() -> list[str]:
            return [path.name for path in metrics_dir.iterdir() if path.name.endswith(f"_{victim}.db")]

        wait_for(lambda: not victim_files())
        # Served again (by the other replica, or the victim's replacement).
        answered = wait_for(lambda: rest_infer(http, "metered", rows(2)).status_code == 200)
        assert answered
        after = Scrape(server)
        # What the dead worker counted is still counted (folded into an archive).
        assert after.value("model_infer_request_success_total", model_name="metered") == 5
        assert after.value("e2e_rows_total", model_name="metered") == 10
        assert victim_files() == []


def test_metrics_endpoint_null_turns_metrics_off(repository: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "settings.json").write_text(json.dumps({"metrics_endpoint": None}))
    write_model(root, "metered", {"implementation": "models.Metered"}, True)
    with (
        ServerProcess(root, "--parallel-workers", "1") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        assert rest_infer(http, "metered", rows(1)).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
