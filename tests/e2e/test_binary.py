"""The binary tensor extension and compressed request bodies against a real
server: tritonclient.http with its defaults (binary inputs, binary outputs,
no Content-Type), hand-framed bodies for the edge cases, and the bad framing
the server must reject with a 400 while it keeps serving."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import ml_dtypes
import numpy as np
import pytest
import tritonclient.http as triton

HEADER = "Inference-Header-Content-Length"

# Values at each datatype's edges, so a wrong width or byte order shows.
ARRAYS = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "INT8": np.array([-128, 0, 127], dtype=np.int8),
    "INT16": np.array([-32768, 1, 32767], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([-(2**63), 3, 2**63 - 1], dtype=np.int64),
    "UINT8": np.array([0, 1, 255], dtype=np.uint8),
    "UINT16": np.array([0, 258, 65535], dtype=np.uint16),
    "UINT32": np.array([0, 65536, 2**32 - 1], dtype=np.uint32),
    "UINT64": np.array([0, 2**40, 2**64 - 1], dtype=np.uint64),
    "FP16": np.array([-1.5, 0.0, 65504.0], dtype=np.float16),
    "FP32": np.array([[1.25, -3.4e38], [np.inf, 1e-45]], dtype=np.float32),
    "FP64": np.array([np.pi, -1e308, 5e-324], dtype=np.float64),
    "BF16": np.array([1.0, -2.5, 0.15625], dtype=ml_dtypes.bfloat16),
    # Not UTF-8, with zero bytes and an empty element: raw BYTES carry any bytes.
    "BYTES": np.array([[b"\xff\x00\xfe", b""], [b"caf\xc3\xa9", b"\x00"]], dtype=np.object_),
}


@pytest.fixture(scope="module")
def triton_client(server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=30)
    yield client
    client.close()


def binary_input(name: str, array: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def frame(header: dict[str, Any], *raw: bytes) -> tuple[bytes, dict[str, str | bytes]]:
    """A binary-extension request body and its framing header."""
    text = json.dumps(header).encode()
    return text + b"".join(raw), {HEADER: str(len(text))}


def split_response(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    assert response.status_code == 200, response.text
    length = int(response.headers[HEADER.lower()])
    return json.loads(response.content[:length]), response.content[length:]


def seen(result: triton.InferResult) -> dict[str, Any]:
    """What the echo model received, from its `seen` output."""
    return json.loads(result.as_numpy("seen")[0])


def assert_still_serving(client: httpx.Client, iris) -> None:
    rows = iris.features[:2]
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": rows.tolist()}]}
    response = client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == iris.classifier.predict(rows).tolist()


# tritonclient with its defaults


def test_iris_with_tritonclient_defaults(triton_client: triton.InferenceServerClient, iris) -> None:
    rows = iris.features[::10]
    request_input = triton.InferInput("input-0", list(rows.shape), "FP32")
    request_input.set_data_from_numpy(rows)  # binary_data=True by default
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
    result = triton_client.infer("iris", [request_input], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), iris.classifier.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), iris.classifier.predict_proba(rows), rtol=1e-12
    )
    for output in result.get_response()["outputs"]:
        assert "binary_data_size" in output["parameters"]
        assert "data" not in output
    # No outputs named: tritonclient asks for every output in binary.
    every = triton_client.infer("iris", [request_input])
    np.testing.assert_array_equal(every.as_numpy("predict"), iris.classifier.predict(rows))


@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_every_datatype_round_trips_raw(triton_client: triton.InferenceServerClient, datatype: str) -> None:
    array = ARRAYS[datatype]
    result = triton_client.infer("echo", [binary_input("x", array, datatype)])
    echoed = result.as_numpy("x")
    assert echoed.shape == array.shape
    if datatype == "BYTES":
        assert echoed.tolist() == array.tolist()
    else:
        assert echoed.dtype == array.dtype
        np.testing.assert_array_equal(echoed, array)
    # The framing parameters are taken out before the model sees the request.
    assert seen(result) == {"request": {}, "inputs": {"x": None}, "outputs": {}}


def test_mixed_json_and_binary_inputs(triton_client: triton.InferenceServerClient) -> None:
    inputs = [
        binary_input("a", ARRAYS["INT16"], "INT16", binary=False),
        binary_input("b", ARRAYS["BYTES"], "BYTES"),
        binary_input("c", ARRAYS["FP64"], "FP64", binary=False),
        binary_input("d", ARRAYS["UINT8"], "UINT8"),
    ]
    outputs = [triton.InferRequestedOutput(name) for name in "abcd"]
    result = triton_client.infer("echo", inputs, outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("a"), ARRAYS["INT16"])
    assert result.as_numpy("b").tolist() == ARRAYS["BYTES"].tolist()
    np.testing.assert_array_equal(result.as_numpy("c"), ARRAYS["FP64"])
    np.testing.assert_array_equal(result.as_numpy("d"), ARRAYS["UINT8"])


def test_json_outputs_on_request(triton_client: triton.InferenceServerClient) -> None:
    outputs = [triton.InferRequestedOutput("x", binary_data=False), triton.InferRequestedOutput("seen")]
    result = triton_client.infer("echo", [binary_input("x", ARRAYS["INT64"], "INT64")], outputs=outputs)
    by_name = {output["name"]: output for output in result.get_response()["outputs"]}
    assert by_name["x"]["data"] == ARRAYS["INT64"].tolist()
    assert "binary_data_size" in by_name["seen"]["parameters"]
    assert seen(result)["outputs"] == {"x": None, "seen": None}


def test_compressed_requests_from_tritonclient(triton_client: triton.InferenceServerClient, iris) -> None:
    rows = iris.features[::30]
    request_input = binary_input("input-0", rows, "FP32")
    for algorithm in ("gzip", "deflate"):
        result = triton_client.infer("iris", [request_input], request_compression_algorithm=algorithm)
        np.testing.assert_array_equal(result.as_numpy("predict"), iris.classifier.predict(rows))


# Hand-framed requests: what exactly goes over the wire


def test_binary_response_framing(client: httpx.Client) -> None:
    values = np.array([1, 2, 3], dtype=np.uint32)
    header = {
        "inputs": [{"name": "x", "shape": [3], "datatype": "UINT32", "parameters": {"binary_data_size": 12}}],
        "outputs": [{"name": "x", "parameters": {"binary_data": True}}],
    }
    body, headers = frame(header, values.tobytes())
    response = client.post("/v2/models/echo/infer", content=body, headers=headers)
    assert response.headers["content-type"] == "application/octet-stream"
    content, raw = split_response(response)
    assert content["outputs"] == [
        {"name": "x", "shape": [3], "datatype": "UINT32", "parameters": {"binary_data_size": 12}}
    ]
    assert raw == values.astype("<u4").tobytes()


def test_json_only_response_has_no_framing_header(client: httpx.Client) -> None:
    header = {
        "inputs": [{"name": "x", "shape": [2], "datatype": "INT8", "parameters": {"binary_data_size": 2}}],
        "outputs": [{"name": "x"}],
    }
    body, headers = frame(header, b"\x01\xff")
    response = client.post("/v2/models/echo/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert HEADER.lower() not in response.headers
    assert response.json()["outputs"][0]["data"] == [1, -1]


def test_binary_data_output_default_and_per_output_override(client: httpx.Client) -> None:
    inputs = [
        {"name": "a", "shape": [2], "datatype": "INT32", "data": [7, 8]},
        {"name": "b", "shape": [2], "datatype": "INT32", "data": [9, 10]},
    ]
    request = {
        "parameters": {"binary_data_output": True, "custom": 1},
        "inputs": inputs,
        "outputs": [{"name": "a", "parameters": {"binary_data": False}}, {"name": "b"}, {"name": "seen"}],
    }
    # JSON request (no framing header), binary response.
    content, raw = split_response(client.post("/v2/models/echo/infer", json=request))
    a, b, _ = content["outputs"]
    assert a["data"] == [7, 8] and "parameters" not in a
    assert b["parameters"] == {"binary_data_size": 8} and "data" not in b
    assert raw[:8] == np.array([9, 10], dtype="<i4").tobytes()
    seen_text = raw[8 + 4 :]
    assert json.loads(seen_text) == {
        "request": {"custom": 1},
        "inputs": {"a": None, "b": None},
        "outputs": {"a": None, "b": None, "seen": None},
    }
    # Request default off, one output on.
    request["parameters"] = {"binary_data_output": False}
    request["outputs"] = [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}]
    content, raw = split_response(client.post("/v2/models/echo/infer", json=request))
    assert content["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert content["outputs"][1]["data"] == [9, 10]
    assert raw == np.array([7, 8], dtype="<i4").tobytes()


def test_header_length_zero_is_one_raw_input(client: httpx.Client, iris) -> None:
    rows = iris.features[:3]
    response = client.post(
        "/v2/models/iris/infer", content=rows.astype("<f4").tobytes(), headers={HEADER: "0"}
    )
    content, raw = split_response(response)
    result = triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers[HEADER.lower()])
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), iris.classifier.predict(rows))
    assert content["outputs"][0]["shape"] == [3]
    # BYTES: the variable dimension is 1.
    raw_text = struct.pack("<I", 3) + b"\xffab"
    content, raw = split_response(
        client.post("/v2/models/echo-bytes/infer", content=raw_text, headers={HEADER: "0"})
    )
    assert content["outputs"][0]["shape"] == [1]
    assert raw.startswith(raw_text)


@pytest.mark.parametrize(
    ("model", "body", "problem"),
    [
        ("echo", b"\x00" * 4, "model 'echo' to declare exactly one input"),
        ("iris", b"", "needs the raw input data in the body; it is empty"),
        ("iris", b"\x00" * 20, "raw body of 20 bytes does not fit shape [-1, 4] of FP32"),
        ("echo-bytes", struct.pack("<I", 9) + b"ab", "'text': raw BYTES element 0 of 9 bytes overruns"),
    ],
)
def test_header_length_zero_errors(client: httpx.Client, iris, model: str, body: bytes, problem: str) -> None:
    response = client.post(f"/v2/models/{model}/infer", content=body, headers={HEADER: "0"})
    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert_still_serving(client, iris)


def one_input(size: Any, shape: list[int], datatype: str = "INT32") -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}
        ]
    }


BYTES_OVERRUN = struct.pack("<I", 200) + b"ab"


@pytest.mark.parametrize(
    ("header", "raw", "length", "problem"),
    [
        (one_input(4, [1]), b"\x00" * 4, "9999", "Inference-Header-Content-Length is 9999 but the body"),
        (one_input(4, [1]), b"\x00" * 4, "ten", "invalid Inference-Header-Content-Length header: 'ten'"),
        (one_input(4, [1]), b"\x00" * 4, "\u00b2", "invalid Inference-Header-Content-Length header"),
        (one_input(4, [1]), b"\x00" * 6, None, "6 bytes of binary data follow the JSON header, but the "
         "inputs' binary_data_size add up to 4 (inputs: 'x' 4)"),
        (one_input(8, [3]), b"\x00" * 8, None, "tensor 'x': shape [3] of INT32 needs 12 bytes of raw data"),
        (one_input(6, [2], "BYTES"), BYTES_OVERRUN, None, "tensor 'x': raw BYTES element 0 of 200 bytes"),
        (one_input(2, [1], "BYTES"), b"\x01\x00", None, "tensor 'x': raw BYTES data ends inside a length"),
        (one_input(-1, [1]), b"", None, "input 'x': binary_data_size must be a non-negative integer"),
        (one_input(4, [1]), b"\x00" * 4, "3", "malformed JSON"),
    ],
)  # fmt: skip
def test_bad_framing_is_a_400_naming_the_problem(
    client: httpx.Client, iris, header: dict[str, Any], raw: bytes, length: str | None, problem: str
) -> None:
    body, headers = frame(header, raw)
    if length is not None:
        headers[HEADER] = length.encode("latin-1")
    response = client.post("/v2/models/echo/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert problem in response.json()["error"]
    assert_still_serving(client, iris)


def test_data_and_binary_data_size_together(client: httpx.Client, iris) -> None:
    header = one_input(4, [1])
    header["inputs"][0]["data"] = [1]
    body, headers = frame(header, b"\x00" * 4)
    response = client.post("/v2/models/echo/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "input 'x' has both data and binary_data_size"
    assert_still_serving(client, iris)


# Compressed bodies


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_compressed_json_bodies(client: httpx.Client, infer_body, iris, encoding: str, compress: Any) -> None:
    rows = iris.features[::20]
    content = compress(json.dumps(infer_body(rows, ["predict"])).encode())
    response = client.post(
        "/v2/models/iris/infer", content=content, headers={"Content-Encoding": encoding.upper()}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == iris.classifier.predict(rows).tolist()


def test_compressed_binary_body(client: httpx.Client) -> None:
    body, headers = frame(one_input(8, [2]), np.array([5, -6], dtype="<i4").tobytes())
    headers["Content-Encoding"] = "gzip"
    response = client.post("/v2/models/echo/infer", content=gzip.compress(body), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [5, -6]


@pytest.mark.parametrize(
    ("encoding", "content", "status", "problem"),
    [
        ("br", b"anything", 415, "Content-Encoding 'br' is not supported"),
        ("gzip", b"not gzip at all", 400, "request body is not valid gzip data"),
        ("gzip", gzip.compress(b'{"inputs": []}')[:-6], 400, "request body is truncated gzip data"),
    ],
)
def test_bad_encodings(
    client: httpx.Client, iris, encoding: str, content: bytes, status: int, problem: str
) -> None:
    response = client.post("/v2/models/iris/infer", content=content, headers={"Content-Encoding": encoding})
    assert response.status_code == status
    assert problem in response.json()["error"]
    assert_still_serving(client, iris)


def test_gzip_bomb_is_a_413(limited_server, iris) -> None:
    # Under the 1000-byte limit compressed, 500 times over it decompressed.
    bomb = gzip.compress(b" " * 500_000)
    assert len(bomb) < 1000
    url = f"{limited_server.process.url}/v2/models/good/infer"
    response = httpx.post(url, content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompresses to more than the limit of 1000 bytes" in response.json()["error"]
    # A compressed body that fits once decompressed still works.
    rows = iris.features[:1]
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": rows.tolist()}]}
    response = httpx.post(
        url, content=gzip.compress(json.dumps(body).encode()), headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == iris.classifier.predict(rows).tolist()


def test_binary_asked_only_for_an_output_not_returned(client: httpx.Client) -> None:
    # Echo returns no `ghost`: nothing goes binary, so the response is plain JSON.
    request = {
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [4]}],
        "outputs": [{"name": "x"}, {"name": "ghost", "parameters": {"binary_data": True}}],
    }
    response = client.post("/v2/models/echo/infer", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert HEADER.lower() not in response.headers
    assert response.json()["outputs"] == [{"name": "x", "shape": [1], "datatype": "INT8", "data": [4]}]
