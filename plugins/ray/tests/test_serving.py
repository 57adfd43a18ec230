"""Two scikit-learn models, each with 2 replicas, served through Ray Serve by
`core start --on ray` on the session's local Ray cluster: predictions,
third-party and core clients, errors, readiness, metrics, and a replica
killed under load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from tritonclient.utils import InferenceServerException

from core.client import GRPCClient, RESTClient
from core.testing import ServerProcess

from .conftest import ray_server

IRIS, IRIS_LABELS = load_iris(return_X_y=True)
DIABETES, DIABETES_TARGET = load_diabetes(return_X_y=True)
# Small shares of a CPU: 4 model replicas fit the cluster's 2 CPUs.
REPLICAS = {"num_replicas": 2, "num_cpus": 0.25}


def write_model(folder: Path, name: str, estimator: object) -> None:
    folder.mkdir(parents=True)
    joblib.dump(estimator, folder / "model.joblib")
    settings = {"name": name, "implementation": "sklearn", "parameters": {"extra": {"ray": REPLICAS}}}
    (folder / "model-settings.json").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def estimators() -> dict[str, object]:
    return {
        "iris": LogisticRegression(max_iter=500).fit(IRIS, IRIS_LABELS),
        "diabetes": LinearRegression().fit(DIABETES, DIABETES_TARGET),
    }


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, ray_address: str, estimators: dict
) -> Iterator[ServerProcess]:
    models = tmp_path_factory.mktemp("models")
    for name, estimator in estimators.items():
        write_model(models / name, name, estimator)
    process = ray_server(models, ray_address).start()
    yield process
    assert process.stop(timeout=60) == 0, process.log()


def infer_json(url: str, model: str, rows: np.ndarray) -> httpx.Response:
    body = {
        "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        ]
    }
    return httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)


def test_predictions_equal_scikit_learns(server: ServerProcess, estimators: dict) -> None:
    for name, rows in (("iris", IRIS[:20]), ("diabetes", DIABETES[:20])):
        response = infer_json(server.url, name, rows)
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        np.testing.assert_allclose(output["data"], estimators[name].predict(rows))


def test_core_client_binary_tensors(server: ServerProcess, estimators: dict) -> None:
    with RESTClient(server.url) as client:
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        result = client.infer("iris", {"x": IRIS[:7]})
        np.testing.assert_array_equal(result.as_numpy("predict"), estimators["iris"].predict(IRIS[:7]))
        assert client.model_metadata("diabetes").name == "diabetes"


def test_tritonclient_http_unmodified(server: ServerProcess, estimators: dict) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("diabetes")
    tensor = triton.InferInput("x", list(DIABETES[:5].shape), "FP64")
    tensor.set_data_from_numpy(DIABETES[:5], binary_data=True)
    result = client.infer(
        "diabetes", [tensor], outputs=[triton.InferRequestedOutput("predict", binary_data=True)]
    )
    np.testing.assert_allclose(result.as_numpy("predict"), estimators["diabetes"].predict(DIABETES[:5]))
    client.close()


def test_grpc_through_ray_serves_proxy(server: ServerProcess, estimators: dict) -> None:
    """tritonclient's gRPC client and core's, unmodified, on Ray's gRPC proxy."""
    target = f"127.0.0.1:{server.grpc_port}"
    client = triton_grpc.InferenceServerClient(target)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    assert client.get_model_metadata("iris").name == "iris"
    tensor = triton_grpc.InferInput("x", list(IRIS[:6].shape), "FP64")
    tensor.set_data_from_numpy(IRIS[:6])
    result = client.infer("iris", [tensor])
    np.testing.assert_array_equal(result.as_numpy("predict"), estimators["iris"].predict(IRIS[:6]))
    # Errors keep their gRPC codes and messages.
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [tensor])
    assert unknown.value.status() == "StatusCode.NOT_FOUND" and "nope" in unknown.value.message()
    narrow = triton_grpc.InferInput("x", [2, 3], "FP64")
    narrow.set_data_from_numpy(IRIS[:2, :3])
    with pytest.raises(InferenceServerException) as bad:
        client.infer("iris", [narrow])
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT" and "3 features" in bad.value.message()
    client.close()
    with GRPCClient(target) as core_client:
        answer = core_client.infer("diabetes", {"x": DIABETES[:4]})
        np.testing.assert_allclose(answer.as_numpy("predict"), estimators["diabetes"].predict(DIABETES[:4]))
        assert {item.name for item in core_client.repository_index()} == {"iris", "diabetes"}


def test_bad_input_gets_a_4xx_naming_it_and_the_server_serves_on(server: ServerProcess) -> None:
    wrong_width = infer_json(server.url, "iris", IRIS[:2, :3])
    assert wrong_width.status_code == 400
    assert "3 features" in wrong_width.json()["error"]
    assert infer_json(server.url, "nope", IRIS[:2]).status_code == 404
    broken = httpx.post(f"{server.url}/v2/models/iris/infer", content=b"{not json", timeout=30)
    assert broken.status_code == 400 and "error" in broken.json()
    assert infer_json(server.url, "iris", IRIS[:2]).status_code == 200


def test_repository_and_metrics_cover_every_replica(server: ServerProcess) -> None:
    index = httpx.post(f"{server.url}/v2/repository/index", timeout=30).json()
    assert {(item["name"], item["state"]) for item in index} == {("iris", "READY"), ("diabetes", "READY")}
    for _ in range(10):
        assert infer_json(server.url, "diabetes", DIABETES[:1]).status_code == 200
    # Replicas write their counts to the metrics folder every second.
    deadline = time.monotonic() + 10
    while (counted := diabetes_successes(server)) < 10:
        assert time.monotonic() < deadline, counted
        time.sleep(0.5)


def diabetes_successes(server: ServerProcess) -> float:
    metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('model_infer_request_success_total{model_name="diabetes"')
    )


def replica_pids(app: str) -> set[int]:
    """The model replicas' processes (Ray names them after the application)."""
    found = subprocess.run(["pgrep", "-f", f"ServeReplica:{app}:"], capture_output=True, text=True)
    return {int(pid) for pid in found.stdout.split()}


def test_a_replica_killed_under_load_is_restarted_and_no_request_hangs(server: ServerProcess) -> None:
    before = replica_pids("core-iris")
    assert len(before) == 2
    stop = time.monotonic() + 6

    def load() -> list[tuple[int, float]]:
        seen = []
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                started = time.monotonic()
                body = {
                    "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS[0].tolist()}]
                }
                status = client.post(f"{server.url}/v2/models/iris/infer", json=body).status_code
                seen.append((status, time.monotonic() - started))
        return seen

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(load) for _ in range(4)]
        time.sleep(1.5)
        os.kill(min(before), signal.SIGKILL)
        results = [item for future in running for item in future.result()]
    statuses = {status for status, _ in results}
    assert statuses <= {200, 503}, statuses
    # None hung: each one answered well within the client's timeout.
    assert max(seconds for _, seconds in results) < 10
    # Ray starts a new replica in the killed one's place, and both serve.
    deadline = time.monotonic() + 60
    while not (len(replica_pids("core-iris")) == 2 and replica_pids("core-iris") != before):
        assert time.monotonic() < deadline, replica_pids("core-iris")
        time.sleep(0.5)
    assert all(infer_json(server.url, "iris", IRIS[:3]).status_code == 200 for _ in range(10))


def test_repository_unload_deletes_the_application_and_load_deploys_it(server: ServerProcess) -> None:
    with RESTClient(server.url) as client:
        client.unload_model("diabetes")
        assert client.is_model_ready("diabetes") is False
        assert infer_json(server.url, "diabetes", DIABETES[:1]).status_code == 404  # as `core start`
        deadline = time.monotonic() + 60
        while replica_pids("core-diabetes"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        client.load_model("diabetes")
        assert client.is_model_ready("diabetes") is True
        assert len(replica_pids("core-diabetes")) == 2
        assert infer_json(server.url, "diabetes", DIABETES[:2]).status_code == 200
