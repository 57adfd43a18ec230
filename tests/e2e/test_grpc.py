"""The gRPC server with Triton's own gRPC client (raw tensor contents, its
default), grpc.health.v1 and server reflection; see test_grpc_oip_stub.py for
a stub compiled from the official OIP proto."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

import core


@pytest.fixture(scope="module")
def grpc_url(server) -> str:
    return f"127.0.0.1:{server.grpc_port}"


@pytest.fixture(scope="module")
def triton_client(grpc_url: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=grpc_url)
    yield client
    client.close()


def infer_iris(
    client: triton.InferenceServerClient, rows: np.ndarray, model: str = "iris", version: str = ""
):
    request_input = triton.InferInput("input-0", list(rows.shape), "FP32")
    request_input.set_data_from_numpy(rows)
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
    return client.infer(model, [request_input], model_version=version, outputs=outputs, request_id="g-1")


def status_of(error: InferenceServerException) -> str:
    return str(error.status())


def test_health(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("iris")
    assert triton_client.is_model_ready("multi", "1")


def test_model_ready_of_unknown_model_is_not_found(triton_client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="ghost") as raised:
        triton_client.is_model_ready("ghost")
    assert status_of(raised.value) == "StatusCode.NOT_FOUND"


def test_server_and_model_metadata(triton_client: triton.InferenceServerClient) -> None:
    server = triton_client.get_server_metadata(as_json=True)
    assert server["name"] == "core"
    assert server["version"] == core.__version__
    assert "model_repository" in server["extensions"]
    model = triton_client.get_model_metadata("iris", as_json=True)
    assert model["name"] == "iris"
    assert model["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert triton_client.get_model_metadata("multi", "2", as_json=True)["versions"] == ["1", "2"]


def test_infer_iris_with_raw_fp32(triton_client: triton.InferenceServerClient, iris) -> None:
    rows = iris.features[::7]
    result = infer_iris(triton_client, rows)
    np.testing.assert_array_equal(result.as_numpy("predict"), iris.classifier.predict(rows))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), iris.classifier.predict_proba(rows))
    response = result.get_response(as_json=True)
    assert response["model_name"] == "iris"
    assert response["id"] == "g-1"


def test_infer_picks_the_version(triton_client: triton.InferenceServerClient, iris) -> None:
    rows = iris.features
    result = infer_iris(triton_client, rows, model="multi", version="1")
    np.testing.assert_array_equal(result.as_numpy("predict"), iris.stump.predict(rows))


def test_bytes_in_and_out(triton_client: triton.InferenceServerClient) -> None:
    # Not UTF-8 and with a zero byte: raw BYTES carry any bytes.
    words = np.array([[b"hello", b""], [b"\xff\x00mixed", "caf\u00e9".encode()]], dtype=np.object_)
    request_input = triton.InferInput("text", list(words.shape), "BYTES")
    request_input.set_data_from_numpy(words)
    result = triton_client.infer("upper", [request_input])
    upper = result.as_numpy("upper")
    assert upper.shape == (2, 2)
    assert upper.tolist() == [[b"HELLO", b""], [b"\xff\x00MIXED", "CAF\u00e9".encode()]]


def test_repository_index_load_unload(triton_client: triton.InferenceServerClient, iris) -> None:
    index = triton_client.get_model_repository_index(as_json=True)["models"]
    states = {(item["name"], item.get("version", "")): item.get("state") for item in index}
    assert states[("iris", "")] == "READY"
    assert states[("multi", "1")] == "READY" and states[("multi", "2")] == "READY"
    triton_client.unload_model("scratch-grpc")
    index = triton_client.get_model_repository_index(as_json=True)["models"]
    assert {"name": "scratch-grpc", "state": "UNAVAILABLE"} in index
    triton_client.load_model("scratch-grpc")
    assert triton_client.is_model_ready("scratch-grpc")
    result = infer_iris(triton_client, iris.features[:3], model="scratch-grpc")
    np.testing.assert_array_equal(result.as_numpy("predict"), iris.classifier.predict(iris.features[:3]))
    with pytest.raises(InferenceServerException, match="ghost") as raised:
        triton_client.load_model("ghost")
    assert status_of(raised.value) == "StatusCode.NOT_FOUND"


def test_unknown_model_is_not_found(triton_client: triton.InferenceServerClient, iris) -> None:
    with pytest.raises(InferenceServerException, match="ghost") as raised:
        infer_iris(triton_client, iris.features[:2], model="ghost")
    assert status_of(raised.value) == "StatusCode.NOT_FOUND"


def test_bad_shape_is_invalid_argument(triton_client: triton.InferenceServerClient, iris) -> None:
    request_input = triton.InferInput("input-0", [2, 4], "FP32")
    request_input.set_data_from_numpy(iris.features[:2])
    request_input.set_shape([3, 4])  # 8 values sent for 12
    with pytest.raises(InferenceServerException, match="input-0") as raised:
        triton_client.infer("iris", [request_input])
    assert status_of(raised.value) == "StatusCode.INVALID_ARGUMENT"
    assert "48 bytes" in raised.value.message()
    assert triton_client.is_server_ready()


def test_model_exception_is_internal_without_traceback(
    triton_client: triton.InferenceServerClient, iris
) -> None:
    request_input = triton.InferInput("x", [1], "FP32")
    request_input.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="boom") as raised:
        triton_client.infer("exploding", [request_input])
    assert status_of(raised.value) == "StatusCode.INTERNAL"
    assert "Traceback" not in raised.value.message()
    # Still serving.
    result = infer_iris(triton_client, iris.features[:2])
    assert result.as_numpy("predict").shape == (2,)


def test_unknown_datatype_is_invalid_argument(grpc_url: str) -> None:
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FLOAT", shape=[1])
    request.raw_input_contents.append(b"\x00" * 4)
    with grpc.insecure_channel(grpc_url) as channel, pytest.raises(grpc.RpcError) as raised:
        model_infer(channel)(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "FLOAT" in raised.value.details()


def model_infer(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:
    """ModelInfer with tritonclient's own message classes (Triton's proto)."""
    return channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=service_pb2.ModelInferRequest.SerializeToString,
        response_deserializer=service_pb2.ModelInferResponse.FromString,
    )


def test_headers_both_ways(grpc_url: str) -> None:
    request = service_pb2.ModelInferRequest(model_name="header-echo")
    request.inputs.add(name="x", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"-")
    with grpc.insecure_channel(grpc_url) as channel:
        response, call = model_infer(channel).with_call(
            request, metadata=[("x-e2e-echo", "hello")], timeout=10
        )
        metadata = dict(call.initial_metadata())
        assert response.raw_output_contents[0] == b"\x05\x00\x00\x00hello"
        assert metadata["x-e2e-reply"] == "pong-hello"
        # The model's Content-Length is not passed on as gRPC metadata.
        assert "content-length" not in metadata
        with pytest.raises(grpc.RpcError) as raised:
            model_infer(channel)(request, metadata=[("x-e2e-unencodable", "1")], timeout=10)
        assert raised.value.code() == grpc.StatusCode.INTERNAL
        assert "x-e2e-reply" in raised.value.details().lower()


def test_tritonclient_passes_headers(triton_client: triton.InferenceServerClient) -> None:
    request_input = triton.InferInput("x", [1], "BYTES")
    request_input.set_data_from_numpy(np.array([b"-"], dtype=np.object_))
    result = triton_client.infer("header-echo", [request_input], headers={"x-e2e-echo": "triton"})
    assert result.as_numpy("header").tolist() == [b"triton"]


def test_health_check(grpc_url: str) -> None:
    with grpc.insecure_channel(grpc_url) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as raised:
            stub.Check(health_pb2.HealthCheckRequest(service="nothing.Here"), timeout=10)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_not_ready_over_grpc(limited_server) -> None:
    url = f"127.0.0.1:{limited_server.process.grpc_port}"
    client = triton.InferenceServerClient(url=url)
    try:
        assert client.is_server_live()
        assert not client.is_server_ready()
        assert client.is_model_ready("good")
        assert not client.is_model_ready("load-raises")
    finally:
        client.close()
    with grpc.insecure_channel(url) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_and_describes_the_service(grpc_url: str) -> None:
    with grpc.insecure_channel(grpc_url) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
        ]
        listing, described = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
    services = {service.name for service in listing.list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
    files = described.file_descriptor_response.file_descriptor_proto
    assert files and b"ModelInfer" in files[0]


def test_undecodable_message_is_refused_and_server_serves_on(
    grpc_url: str, triton_client: triton.InferenceServerClient
) -> None:
    with grpc.insecure_channel(grpc_url) as channel:
        send_bytes = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as raised:
            send_bytes(b"\xff\xff\xff", timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed ModelInferRequest" in raised.value.details()
    assert triton_client.is_server_ready()
