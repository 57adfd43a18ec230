"""Triton's own HTTP client against the server, with its default binary
tensors and with JSON tensors (test_binary.py covers the binary extension in
depth)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

import core


@pytest.fixture(scope="module")
def triton_client(server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=30)
    yield client
    client.close()


def infer_iris(
    client: triton.InferenceServerClient,
    rows: np.ndarray,
    model: str = "iris",
    version: str = "",
    binary: bool = False,
):
    request_input = triton.InferInput("input-0", list(rows.shape), "FP32")
    request_input.set_data_from_numpy(rows, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    return client.infer(model, [request_input], model_version=version, outputs=outputs, request_id="t-1")


def test_health(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("iris")
    assert triton_client.is_model_ready("multi", "1")
    assert not triton_client.is_model_ready("ghost")
    assert not triton_client.is_model_ready("multi", "7")


def test_server_not_ready_with_a_failed_model(limited_server) -> None:
    client = triton.InferenceServerClient(url=limited_server.process.url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert not client.is_server_ready()
        assert client.is_model_ready("good")
        assert not client.is_model_ready("load-raises")
    finally:
        client.close()


def test_server_metadata(triton_client: triton.InferenceServerClient) -> None:
    metadata = triton_client.get_server_metadata()
    assert metadata["name"] == "core"
    assert metadata["version"] == core.__version__
    assert {"binary_tensor_data", "model_repository"} <= set(metadata["extensions"])


def test_model_metadata(triton_client: triton.InferenceServerClient) -> None:
    metadata = triton_client.get_model_metadata("iris")
    assert metadata["name"] == "iris"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    versioned = triton_client.get_model_metadata("multi", "2")
    assert versioned["name"] == "multi"
    assert versioned["versions"] == ["1", "2"]


def test_model_metadata_of_unknown_model(triton_client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="ghost"):
        triton_client.get_model_metadata("ghost")


def test_repository_index(triton_client: triton.InferenceServerClient) -> None:
    index = triton_client.get_model_repository_index()
    names = {item["name"] for item in index}
    assert {"iris", "multi", "iris-alias", "exploding"} <= names
    assert {item["version"] for item in index if item["name"] == "multi"} == {"1", "2"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_scikit_learn(triton_client: triton.InferenceServerClient, iris, binary: bool) -> None:
    rows = iris.features[::10]
    result = infer_iris(triton_client, rows, binary=binary)
    np.testing.assert_array_equal(result.as_numpy("predict"), iris.classifier.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), iris.classifier.predict_proba(rows), rtol=1e-12
    )
    response = result.get_response()
    assert response["model_name"] == "iris"
    assert response["id"] == "t-1"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_versions(triton_client: triton.InferenceServerClient, iris, binary: bool) -> None:
    rows = iris.features[::10]
    v1 = infer_iris(triton_client, rows, "multi", "1", binary).as_numpy("predict")
    v2 = infer_iris(triton_client, rows, "multi", "2", binary).as_numpy("predict")
    default = infer_iris(triton_client, rows, "multi", binary=binary).as_numpy("predict")
    np.testing.assert_array_equal(v1, iris.stump.predict(rows))
    np.testing.assert_array_equal(v2, iris.classifier.predict(rows))
    np.testing.assert_array_equal(default, v2)


def test_infer_error_reaches_the_client(triton_client: triton.InferenceServerClient, iris) -> None:
    with pytest.raises(InferenceServerException, match="available outputs: predict, predict_proba"):
        request_input = triton.InferInput("input-0", [1, 4], "FP32")
        request_input.set_data_from_numpy(iris.features[:1], binary_data=False)
        triton_client.infer(
            "iris", [request_input], outputs=[triton.InferRequestedOutput("nope", binary_data=False)]
        )


def test_unload_and_load(triton_client: triton.InferenceServerClient, iris) -> None:
    rows = iris.features[::25]
    assert triton_client.is_model_ready("scratch-triton")
    triton_client.unload_model("scratch-triton")
    assert not triton_client.is_model_ready("scratch-triton")
    with pytest.raises(InferenceServerException):
        infer_iris(triton_client, rows, "scratch-triton")
    triton_client.load_model("scratch-triton")
    assert triton_client.is_model_ready("scratch-triton")
    np.testing.assert_array_equal(
        infer_iris(triton_client, rows, "scratch-triton").as_numpy("predict"), iris.classifier.predict(rows)
    )


def test_load_unknown_model(triton_client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="ghost"):
        triton_client.load_model("ghost")


def test_grpc_model_ready_is_false_after_unload(server) -> None:
    """tritonclient's gRPC is_model_ready after unload_model: false (as Triton),
    not NOT_FOUND; a name in neither the registry nor the repository stays NOT_FOUND."""
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    try:
        client.unload_model("scratch-triton")
        try:
            assert client.is_model_ready("scratch-triton") is False
            response = httpx.get(f"{server.url}/v2/models/scratch-triton/ready", timeout=30)
            assert response.status_code == 503 and response.json()["ready"] is False
        finally:
            client.load_model("scratch-triton")
        assert client.is_model_ready("scratch-triton") is True
        with pytest.raises(InferenceServerException) as error:
            client.is_model_ready("ghost")
        assert error.value.status() == "StatusCode.NOT_FOUND"
        assert httpx.get(f"{server.url}/v2/models/ghost/ready", timeout=30).status_code == 404
    finally:
        client.close()
