"""Bad requests get `{"error": "..."}` with the right status, never a stack
trace, and never take the server down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

INFER = "/v2/models/iris/infer"


def tensor(**fields: Any) -> dict[str, Any]:
    return {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2], **fields}


def without(key: str) -> dict[str, Any]:
    fields = tensor()
    del fields[key]
    return fields


# (request body: bytes as sent or an object sent as JSON, status, words the message must hold)
BAD_REQUESTS: dict[str, tuple[bytes | Any, int, list[str]]] = {
    "malformed JSON": (b'{"inputs": [', 400, ["malformed JSON"]),
    "not JSON at all": (b"hello", 400, ["malformed JSON"]),
    "empty body": (b"", 400, []),
    "JSON array instead of object": ([1, 2, 3], 400, []),
    "missing inputs": ({"id": "x"}, 400, ["inputs"]),
    "missing shape": ({"inputs": [without("shape")]}, 400, ["shape"]),
    "missing datatype": ({"inputs": [without("datatype")]}, 400, ["datatype"]),
    "missing name": ({"inputs": [without("name")]}, 400, ["name"]),
    "missing data": ({"inputs": [without("data")]}, 400, ["input-0"]),
    "unknown datatype": ({"inputs": [tensor(datatype="FP33")]}, 400, ["datatype"]),
    "lowercase datatype": ({"inputs": [tensor(datatype="fp32")]}, 400, ["datatype"]),
    "shape larger than data": ({"inputs": [tensor(shape=[2, 4])]}, 400, ["shape", "input-0"]),
    "shape smaller than data": ({"inputs": [tensor(shape=[1, 3])]}, 400, ["shape", "input-0"]),
    "negative dimension": ({"inputs": [tensor(shape=[-1, 4])]}, 400, ["shape"]),
    "strings in FP32": ({"inputs": [tensor(data=["a", "b", "c", "d"])]}, 400, ["FP32", "input-0"]),
    "ragged data": ({"inputs": [tensor(shape=[2, 2], data=[[1.0, 2.0], [3.0]])]}, 400, ["input-0"]),
    "numbers in BYTES": ({"inputs": [tensor(datatype="BYTES")]}, 400, ["BYTES"]),
    "out of range INT8": ({"inputs": [tensor(datatype="INT8", data=[1, 2, 3, 999])]}, 400, ["INT8"]),
    "shape not a list": ({"inputs": [tensor(shape="1,4")]}, 400, ["shape"]),
    "unknown output": (
        {"inputs": [tensor()], "outputs": [{"name": "predict_log"}]},
        400,
        ["predict_log", "predict", "predict_proba"],
    ),
}


@pytest.fixture(scope="module")
def good_request(iris) -> Iterator[Any]:
    rows = iris.features[:3]
    expected = iris.classifier.predict(rows)
    body = {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP32", "data": rows.tolist()}]}

    def check(client: httpx.Client) -> None:
        response = client.post(INFER, json=body)
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(response.json()["outputs"][0]["data"], expected)

    yield check


def assert_error(response: httpx.Response, status: int, words: list[str] = ()) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    message = body["error"]
    assert isinstance(message, str) and message
    for word in words:
        assert word in message, (word, message)
    assert "Traceback" not in response.text
    return message


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_infer_request_is_400(client: httpx.Client, good_request, case: str) -> None:
    body, status, words = BAD_REQUESTS[case]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(INFER, content=content, headers={"content-type": "application/json"})
    assert_error(response, status, words)
    good_request(client)


@pytest.mark.parametrize("version", [None, "1"])
def test_unknown_model_or_version_is_404(client: httpx.Client, good_request, version: str | None) -> None:
    path = "/v2/models/ghost/infer" if version is None else "/v2/models/multi/versions/9/infer"
    assert_error(client.post(path, json={"inputs": [tensor()]}), 404, ["not found"])
    good_request(client)


def test_exception_in_predict_is_500_without_stack_trace(client: httpx.Client, good_request) -> None:
    response = client.post("/v2/models/exploding/infer", json={"inputs": [tensor()]})
    message = assert_error(response, 500, ["boom", "exploding"])
    assert "File " not in message
    good_request(client)


def test_unknown_route_and_wrong_method(client: httpx.Client, good_request) -> None:
    assert_error(client.get("/v2/no/such/route"), 404)
    assert_error(client.get(INFER), 405)
    assert_error(client.delete("/v2/health/live"), 405)
    good_request(client)


def test_server_survives_the_battery(client: httpx.Client, server, good_request) -> None:
    # Runs after the bad requests above (pytest keeps file order).
    assert server.alive()
    good_request(client)
    assert client.get("/v2/health/ready").status_code == 200
    # Every bad request was handled by the server's own error handling.
    assert "Exception in ASGI application" not in server.log()


# Body size limit: the limited server has CORE_MAX_REQUEST_BODY_SIZE=1000.


def test_body_over_the_limit_is_413(limited_server) -> None:
    url = limited_server.process.url
    rows = [[5.1, 3.5, 1.4, 0.2]] * 60
    body = json.dumps({"inputs": [{"name": "x", "shape": [60, 4], "datatype": "FP32", "data": rows}]})
    assert len(body) > 1000
    message = assert_error(httpx.post(f"{url}/v2/models/good/infer", content=body), 413)
    assert "1000" in message

    # Without Content-Length (chunked), the limit holds too.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100].encode()

    assert_error(httpx.post(f"{url}/v2/models/good/infer", content=chunks()), 413)

    small = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": rows[:1]}]}
    response = httpx.post(f"{url}/v2/models/good/infer", json=small)
    assert response.status_code == 200, response.text
    assert limited_server.process.alive()
