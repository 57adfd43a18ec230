"""Bounded payloads on every transport: the gRPC message size and the memory
of large messages, the BYTES element limit, names echoed in errors, the
dimension limit, the JSON nesting limit and malformed ModelInfer messages,
each answered as a client error (4xx / a gRPC client status), never a 500."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from core.grpc.generated import inference_pb2 as pb
from core.testing import ServerProcess, child_pids

SERVICE = "/inference.GRPCInferenceService"
MiB = 1 << 20
# Every call of a test answers within this (seconds).
DEADLINE = 60


def grpc_call(server: ServerProcess, method: str, message: bytes, response: type | None = None) -> object:
    """One unary call with the serialized `message` on a raw channel that
    sends up to 2 GiB, as a hostile client would."""
    options = [("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options) as channel:
        call = channel.unary_unary(
            f"{SERVICE}/{method}",
            request_serializer=None,
            response_deserializer=response.FromString if response is not None else None,
        )
        return call(message, timeout=DEADLINE)


def grpc_error(server: ServerProcess, method: str, message: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_call(server, method, message)
    return caught.value


def bytes_request(
    model: str, shape: list[int], raw: bytes | None = None, typed: list[bytes] | None = None
) -> bytes:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=shape)
    if typed is not None:
        tensor.contents.bytes_contents.extend(typed)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request.SerializeToString()


def raw_bytes(elements: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in elements)


def post_binary(
    client: httpx.Client, model: str, tensor: dict[str, object], raw: bytes, outputs: list[str] | None = None
) -> httpx.Response:
    tensor = {**tensor, "parameters": {"binary_data_size": len(raw)}}
    body: dict[str, object] = {"inputs": [tensor]}
    if outputs:
        body["outputs"] = [{"name": name, "parameters": {"binary_data": False}} for name in outputs]
    header = json.dumps(body).encode()
    return client.post(
        f"/v2/models/{model}/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


# 1. One message size for both transports, and the memory of large messages returned.

LIMIT_MIB = 64


@pytest.fixture(scope="module")
def small_server(model_repository: Path) -> Iterator[ServerProcess]:
    """In-process models (the request is parsed in the process measured),
    a 64 MiB body and message limit."""
    env = {"CORE_PARALLEL_WORKERS": "0", "CORE_MAX_REQUEST_BODY_SIZE": str(LIMIT_MIB * MiB)}
    with ServerProcess(model_repository, env=env) as process:
        yield process


def resident_mib(server: ServerProcess) -> int:
    """VmRSS of the server and its workers, in MiB."""
    total = 0
    for pid in {server.process.pid, *child_pids(server.process.pid)} if server.process else ():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) // 1024
    return total


def invalid_iris_message(size: int) -> bytes:
    """A ModelInferRequest of `size` bytes of raw FP32 whose shape wants 4 bytes
    more: read in full, then refused (INVALID_ARGUMENT)."""
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP32", shape=[size // 4 + 1, 1])
    request.raw_input_contents.append(bytes(size))
    return request.SerializeToString()


def settled_mib(server: ServerProcess, ceiling: int) -> int:
    """The resident size once it is at most `ceiling` MiB (memory is given
    back a moment after a large request), or after 5 s."""
    deadline = time.monotonic() + 5
    while (size := resident_mib(server)) > ceiling and time.monotonic() < deadline:
        time.sleep(0.1)
    return size


def test_grpc_message_over_the_body_limit_is_refused_without_holding_memory(
    small_server: ServerProcess,
) -> None:
    before = resident_mib(small_server)
    error = grpc_error(small_server, "ModelInfer", invalid_iris_message((LIMIT_MIB + 16) * MiB))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert str(LIMIT_MIB * MiB) in (error.details() or "")
    assert settled_mib(small_server, before + 32) <= before + 32


def test_memory_of_large_accepted_messages_is_returned(small_server: ServerProcess) -> None:
    """Before: each 48 MiB message left ~150 MB behind (the request held in
    reference cycles of its error, and glibc keeping the freed pages)."""
    size = 48 * MiB
    resident = []
    for _ in range(4):
        error = grpc_error(small_server, "ModelInfer", invalid_iris_message(size))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        time.sleep(0.5)
        resident.append(resident_mib(small_server))
    # At most one message's copies stay referenced (by grpc.aio until the next
    # call); more messages do not add up.
    assert resident[-1] - resident[0] < 48, resident


# 2. BYTES elements: a declared limit on every form, fast below it.


def test_bytes_elements_over_the_limit_are_refused_from_the_shape(
    server: ServerProcess, client: httpx.Client
) -> None:
    over = 1_000_001  # the default max_bytes_elements is 1,000,000
    # REST JSON: the declared shape is enough, whatever the data.
    body = {"inputs": [{"name": "text", "shape": [over], "datatype": "BYTES", "data": ["a"]}]}
    response = client.post("/v2/models/upper/infer", json=body)
    assert response.status_code == 413, response.text
    assert "max_bytes_elements" in response.json()["error"] and "1000000" in response.json()["error"]
    # REST binary: 2,000,000 empty elements (8 MB), once decoded in 3.9 GB / 67 s per 50 M.
    flood = struct.pack("<I", 0) * 2_000_000
    response = post_binary(
        client, "upper", {"name": "text", "shape": [2_000_000], "datatype": "BYTES"}, flood
    )
    assert response.status_code == 413, response.text
    assert "max_bytes_elements" in response.json()["error"]
    # REST: several tensors add up (each under the limit, the request over it).
    half = struct.pack("<I", 0) * 600_000
    tensors = [
        {
            "name": f"t{i}",
            "shape": [600_000],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(half)},
        }
        for i in range(2)
    ]
    header = json.dumps({"inputs": tensors}).encode()
    response = client.post(
        "/v2/models/echo/infer",
        content=header + half + half,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 413, response.text
    # gRPC raw and typed contents.
    for message in (
        bytes_request("upper", [2_000_000], raw=flood),
        bytes_request("upper", [over], typed=[b"a"]),
    ):
        error = grpc_error(server, "ModelInfer", message)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert "max_bytes_elements" in (error.details() or "")


def test_bytes_elements_below_the_limit_are_decoded(server: ServerProcess, client: httpx.Client) -> None:
    """200,000 elements of one length (the vectorised path), with NULs, and
    some of varied lengths (the element-by-element path), both transports."""
    same = [b"a\x00%05d" % i for i in range(200_000)]
    varied = [b"x" * (i % 7) for i in range(1000)]
    for elements in (same, varied):
        response = post_binary(
            client,
            "upper",
            {"name": "text", "shape": [len(elements)], "datatype": "BYTES"},
            raw_bytes(elements),
        )
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        assert output["shape"] == [len(elements)]
        assert output["data"][:3] == [item.upper().decode() for item in elements[:3]]
        reply = grpc_call(
            server,
            "ModelInfer",
            bytes_request("upper", [len(elements)], raw=raw_bytes(elements)),
            pb.ModelInferResponse,
        )
        assert isinstance(reply, pb.ModelInferResponse)
        assert reply.raw_output_contents[0] == raw_bytes([item.upper() for item in elements])


# 3. Client-supplied text in errors is shortened.


def test_a_huge_model_name_is_not_found_with_a_short_message(
    server: ServerProcess, client: httpx.Client
) -> None:
    name = "m" * 100_000
    for method, message in (
        ("ModelReady", pb.ModelReadyRequest(name=name)),
        ("ModelMetadata", pb.ModelMetadataRequest(name=name)),
        ("ModelInfer", pb.ModelInferRequest(model_name=name)),
    ):
        error = grpc_error(server, method, message.SerializeToString())
        assert error.code() == grpc.StatusCode.NOT_FOUND, (method, error.code())
        details = error.details() or ""
        assert "not found" in details and len(details) < 1000, (method, len(details))
    response = client.get(f"/v2/models/{'m' * 5000}")
    assert response.status_code == 404
    assert len(response.json()["error"]) < 1000


def test_a_huge_tensor_name_is_shortened_in_errors(server: ServerProcess, client: httpx.Client) -> None:
    name = "t" * 100_000
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name=name, datatype="NOPE", shape=[1])
    error = grpc_error(server, "ModelInfer", request.SerializeToString())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "unknown datatype" in (error.details() or "") and len(error.details() or "") < 1000
    body = {"inputs": [{"name": name, "shape": [-1], "datatype": "FP32", "data": [1.0]}]}
    response = client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 400
    assert "negative dimension" in response.json()["error"] and len(response.json()["error"]) < 1000


# 4. At most numpy's 64 dimensions.


def test_more_than_64_dimensions_is_a_client_error(server: ServerProcess, client: httpx.Client) -> None:
    shape = [1] * 65
    body = {"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP32", "data": [1.0]}]}
    response = client.post("/v2/models/echo/infer", json=body)
    assert response.status_code == 400, response.text
    assert "65 dimensions" in response.json()["error"] and "64" in response.json()["error"]
    response = post_binary(client, "echo", {"name": "x", "shape": shape, "datatype": "FP32"}, bytes(4))
    assert response.status_code == 400, response.text
    assert "limit of 64" in response.json()["error"]
    raw = pb.ModelInferRequest(model_name="echo")
    raw.inputs.add(name="x", datatype="FP32", shape=shape)
    raw.raw_input_contents.append(bytes(4))
    typed = pb.ModelInferRequest(model_name="echo")
    typed.inputs.add(name="x", datatype="FP32", shape=shape).contents.fp32_contents.append(1.0)
    for message in (raw, typed):
        error = grpc_error(server, "ModelInfer", message.SerializeToString())
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        assert "limit of 64" in (error.details() or "")
    # 64 dimensions are fine.
    body["inputs"][0]["shape"] = [1] * 64  # type: ignore[index]
    assert client.post("/v2/models/echo/infer", json=body).status_code == 200


# 5. JSON nested too deep.


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"deeper": value}
    return value


@pytest.mark.parametrize("route", ["generate", "generate_stream", "infer_stream", "infer"])
def test_deeply_nested_parameters_are_a_client_error(client: httpx.Client, route: str) -> None:
    if route.startswith("generate"):
        model, body = "tokens", {"text_input": "one two", "parameters": {"deep": nested(500)}}
    else:
        tensor = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}
        model, body = "echo", {"inputs": [tensor], "parameters": {"deep": nested(500)}}
    response = client.post(f"/v2/models/{model}/{route}", content=json.dumps(body))
    assert response.status_code == 400, response.text
    assert "nested more than 100 levels" in response.json()["error"]
    # Nesting within the limit, and brackets inside strings, are fine.
    body["parameters"] = {"deep": nested(40), "text": "[" * 500}
    response = client.post(f"/v2/models/{model}/{route}", content=json.dumps(body))
    assert response.status_code == 200, response.text


# 6. A garbage ModelInfer message is reported as a ModelInferRequest.


def test_garbage_model_infer_speaks_of_model_infer_request(server: ServerProcess) -> None:
    error = grpc_error(server, "ModelInfer", b"\xff\xff\xff\xff garbage")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    details = error.details() or ""
    assert "ModelInferRequest" in details and "ModelMetadataRequest" not in details, details


def test_oversized_arrays_stay_numeric_errors(client: httpx.Client) -> None:
    """A huge declared numeric shape with little data is a mismatch (400), not an allocation."""
    body = {
        "inputs": [{"name": "input-0", "shape": [2**40, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]
    }
    response = client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 400, response.text
