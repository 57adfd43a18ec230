"""Triton's model configuration and statistics extensions over REST (httpx,
tritonclient.http) and gRPC (tritonclient.grpc).

Statistics tests run against a server of their own, each client on its own
model, so that the counts are exactly the requests each test sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from core.testing import ServerProcess

IRIS_CONFIG = {
    "name": "iris",
    "platform": "",
    "backend": "core_sklearn.SKLearnModel",
    "max_batch_size": 0,
    "input": [{"name": "input-0", "data_type": "TYPE_FP32", "dims": [-1, 4]}],
    "output": [
        {"name": "predict", "data_type": "TYPE_INT64", "dims": [-1]},
        {"name": "predict_proba", "data_type": "TYPE_FP64", "dims": [-1, 3]},
    ],
}


@pytest.fixture(scope="module")
def stats_server(
    tmp_path_factory: pytest.TempPathFactory, iris: Any, model_folder: Any, model_settings: Any
) -> Iterator[ServerProcess]:
    write_model, iris_settings = model_folder, model_settings
    root: Path = tmp_path_factory.mktemp("stats")
    for name in ("counted-httpx", "counted-triton", "counted-grpc"):
        write_model(root / name, iris_settings(name), iris.classifier)
    batched = {**iris_settings("batched"), "max_batch_size": 8, "platform": "sklearn"}
    write_model(root / "batched", batched, iris.classifier)
    write_model(root / "versioned-v1", iris_settings("versioned", version="1"), iris.stump)
    write_model(root / "versioned-v2", iris_settings("versioned", version="2"), iris.classifier)
    write_model(
        root / "exploding", {"name": "exploding", "implementation": "models.Exploding"}, models_py=True
    )
    with ServerProcess(root) as process:
        yield process


@pytest.fixture(scope="module")
def stats_client(stats_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stats_server.url, timeout=30) as http:
        yield http


def iris_body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}]
    }


# Model configuration


def test_server_metadata_lists_the_extensions(client: httpx.Client) -> None:
    assert client.get("/v2").json()["extensions"] == [
        "binary_tensor_data",
        "model_repository",
        "model_configuration",
        "statistics",
    ]


@pytest.mark.parametrize("path", ["/v2/models/iris/config", "/v2/models/iris-alias/config"])
def test_config_from_model_settings(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    config = response.json()
    name = path.split("/")[3]
    expected = {**IRIS_CONFIG, "name": name}
    if name == "iris-alias":
        expected["backend"] = "sklearn"
    assert config == expected


def test_config_of_a_model_without_metadata(client: httpx.Client) -> None:
    response = client.get("/v2/models/upper/config")
    assert response.status_code == 200
    assert response.json() == {
        "name": "upper",
        "platform": "",
        "backend": "models.Upper",
        "max_batch_size": 0,
        "input": [],
        "output": [],
    }


def test_config_without_the_batch_dimension(stats_client: httpx.Client) -> None:
    config = stats_client.get("/v2/models/batched/config").json()
    assert config["max_batch_size"] == 8
    assert config["platform"] == "sklearn"
    assert config["input"] == [{"name": "input-0", "data_type": "TYPE_FP32", "dims": [4]}]
    assert [output["dims"] for output in config["output"]] == [[], [3]]


def test_config_of_versions(client: httpx.Client) -> None:
    assert client.get("/v2/models/multi/versions/1/config").json()["name"] == "multi"
    assert client.get("/v2/models/multi/config").status_code == 200
    missing = client.get("/v2/models/multi/versions/7/config")
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_config_of_unknown_model(client: httpx.Client) -> None:
    response = client.get("/v2/models/ghost/config")
    assert response.status_code == 404
    assert "ghost" in response.json()["error"]


def test_config_with_tritonclient_http(server: ServerProcess) -> None:
    client = triton_http.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.get_model_config("iris") == IRIS_CONFIG
        with pytest.raises(InferenceServerException, match="ghost"):
            client.get_model_config("ghost")
    finally:
        client.close()


def test_config_with_tritonclient_grpc(server: ServerProcess) -> None:
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    try:
        config = client.get_model_config("iris").config
        assert (config.name, config.platform, config.backend) == ("iris", "", "core_sklearn.SKLearnModel")
        assert config.max_batch_size == 0
        assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
            ("input-0", triton_grpc.model_config_pb2.TYPE_FP32, [-1, 4])
        ]
        assert [(o.name, list(o.dims)) for o in config.output] == [
            ("predict", [-1]),
            ("predict_proba", [-1, 3]),
        ]
        assert client.get_model_config("upper", as_json=True)["config"]["name"] == "upper"
        assert client.get_model_config("multi", "2").config.name == "multi"
        with pytest.raises(InferenceServerException, match="ghost") as raised:
            client.get_model_config("ghost")
        assert str(raised.value.status()) == "StatusCode.NOT_FOUND"
    finally:
        client.close()


# Statistics


def assert_counts(stat: dict[str, Any], success: int, fail: int) -> None:
    inference = stat["inference_stats"]
    assert inference["success"]["count"] == success
    assert inference["fail"]["count"] == fail
    assert inference["compute_infer"]["count"] == success
    assert stat["inference_count"] == success
    assert stat["execution_count"] == success
    if success:
        assert inference["success"]["ns"] >= inference["compute_infer"]["ns"] > 0
    if fail:
        assert inference["fail"]["ns"] > 0
    if success or fail:
        assert stat["last_inference"] > 0


def test_statistics_count_good_and_failing_requests(stats_client: httpx.Client, iris: Any) -> None:
    before = stats_client.get("/v2/models/counted-httpx/stats").json()["model_stats"]
    assert len(before) == 1
    assert_counts(before[0], 0, 0)
    assert before[0]["last_inference"] == 0
    for index in range(5):
        response = stats_client.post(
            "/v2/models/counted-httpx/infer", json=iris_body(iris.features[index : index + 2])
        )
        assert response.status_code == 200
    bad = {"inputs": [{"name": "input-0", "shape": [3], "datatype": "FP32", "data": [1.0]}]}
    for _ in range(3):
        assert stats_client.post("/v2/models/counted-httpx/infer", json=bad).status_code == 400
    after = stats_client.get("/v2/models/counted-httpx/stats").json()["model_stats"]
    assert [stat["name"] for stat in after] == ["counted-httpx"]
    assert "version" not in after[0]
    assert_counts(after[0], 5, 3)
    for key in ("queue", "compute_input", "compute_output"):
        assert after[0]["inference_stats"][key] == {"count": 0, "ns": 0}


def test_statistics_count_model_errors(stats_client: httpx.Client) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}
    for _ in range(2):
        assert stats_client.post("/v2/models/exploding/infer", json=body).status_code == 500
    (stat,) = stats_client.get("/v2/models/exploding/stats").json()["model_stats"]
    assert_counts(stat, 0, 2)


def test_statistics_count_batch_items_as_inferences(stats_client: httpx.Client, iris: Any) -> None:
    assert stats_client.post("/v2/models/batched/infer", json=iris_body(iris.features[:6])).status_code == 200
    (stat,) = stats_client.get("/v2/models/batched/stats").json()["model_stats"]
    assert stat["inference_count"] == 6
    assert stat["execution_count"] == 1


def test_statistics_of_versions(stats_client: httpx.Client, iris: Any) -> None:
    body = iris_body(iris.features[:1])
    for _ in range(2):
        assert stats_client.post("/v2/models/versioned/versions/1/infer", json=body).status_code == 200
    assert stats_client.post("/v2/models/versioned/infer", json=body).status_code == 200  # version 2
    both = stats_client.get("/v2/models/versioned/stats").json()["model_stats"]
    assert [(stat["name"], stat["version"]) for stat in both] == [("versioned", "1"), ("versioned", "2")]
    assert_counts(both[0], 2, 0)
    assert_counts(both[1], 1, 0)
    (one,) = stats_client.get("/v2/models/versioned/versions/1/stats").json()["model_stats"]
    assert_counts(one, 2, 0)
    assert stats_client.get("/v2/models/versioned/versions/7/stats").status_code == 404


def test_statistics_of_every_model(stats_client: httpx.Client) -> None:
    response = stats_client.get("/v2/models/stats")
    assert response.status_code == 200
    names = [(stat["name"], stat.get("version")) for stat in response.json()["model_stats"]]
    assert names == [
        ("batched", None),
        ("counted-grpc", None),
        ("counted-httpx", None),
        ("counted-triton", None),
        ("exploding", None),
        ("versioned", "1"),
        ("versioned", "2"),
    ]


def test_statistics_of_unknown_model(stats_client: httpx.Client) -> None:
    response = stats_client.get("/v2/models/ghost/stats")
    assert response.status_code == 404
    assert "ghost" in response.json()["error"]


def test_statistics_with_tritonclient_http(stats_server: ServerProcess, iris: Any) -> None:
    client = triton_http.InferenceServerClient(url=stats_server.url.removeprefix("http://"))
    try:
        rows = iris.features[:3]
        request_input = triton_http.InferInput("input-0", list(rows.shape), "FP32")
        request_input.set_data_from_numpy(rows, binary_data=False)
        for _ in range(4):
            client.infer("counted-triton", [request_input])
        wrong = triton_http.InferInput("input-0", list(rows.shape), "FP32")
        wrong.set_data_from_numpy(rows, binary_data=False)
        wrong.set_shape([1, 4])  # 12 values for a [1, 4] shape: the server answers 400
        with pytest.raises(InferenceServerException):
            client.infer("counted-triton", [wrong])
        (stat,) = client.get_inference_statistics("counted-triton")["model_stats"]
        assert_counts(stat, 4, 1)
        every = client.get_inference_statistics()["model_stats"]
        assert "counted-triton" in {stat["name"] for stat in every}
        with pytest.raises(InferenceServerException, match="ghost"):
            client.get_inference_statistics("ghost")
    finally:
        client.close()


def test_statistics_with_tritonclient_grpc(stats_server: ServerProcess, iris: Any) -> None:
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{stats_server.grpc_port}")
    try:
        rows = iris.features[:3]
        request_input = triton_grpc.InferInput("input-0", list(rows.shape), "FP32")
        request_input.set_data_from_numpy(rows)
        for _ in range(3):
            client.infer("counted-grpc", [request_input])
        # Five features for a model trained on four: the model call fails. (A
        # request whose raw contents do not match its shape is rejected while
        # parsing, before a model is chosen, and is not counted.)
        wrong = triton_grpc.InferInput("input-0", [2, 5], "FP32")
        wrong.set_data_from_numpy(np.ones((2, 5), dtype=np.float32))
        for _ in range(2):
            with pytest.raises(InferenceServerException):
                client.infer("counted-grpc", [wrong])
        response = client.get_inference_statistics("counted-grpc")
        (stat,) = response.model_stats
        assert (stat.name, stat.version) == ("counted-grpc", "")
        inference = stat.inference_stats
        assert (inference.success.count, inference.fail.count, inference.compute_infer.count) == (3, 2, 3)
        assert (stat.inference_count, stat.execution_count) == (3, 3)
        assert inference.success.ns >= inference.compute_infer.ns > 0
        assert stat.last_inference > 0
        as_json = client.get_inference_statistics("versioned", "1", as_json=True)
        assert [stat["version"] for stat in as_json["model_stats"]] == ["1"]
        every = client.get_inference_statistics().model_stats
        assert "counted-grpc" in {stat.name for stat in every}
        with pytest.raises(InferenceServerException, match="ghost") as raised:
            client.get_inference_statistics("ghost")
        assert str(raised.value.status()) == "StatusCode.NOT_FOUND"
    finally:
        client.close()
