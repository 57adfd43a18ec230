"""Every OIP REST endpoint, with and without `/versions/{version}`, against a
real server holding several real scikit-learn models."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

import core

ROWS = slice(0, 150, 7)  # rows from all three classes


def predictions(response: httpx.Response) -> dict[str, np.ndarray]:
    assert response.status_code == 200, response.text
    return {
        output["name"]: np.asarray(output["data"]).reshape(output["shape"])
        for output in response.json()["outputs"]
    }


def test_health_live(client: httpx.Client) -> None:
    response = client.get("/v2/health/live")
    assert response.status_code == 200
    assert response.json() == {"live": True}


def test_health_ready_when_every_model_is_ready(client: httpx.Client) -> None:
    response = client.get("/v2/health/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True}


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_server_metadata(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "name": "core",
        "version": core.__version__,
        "extensions": ["binary_tensor_data", "model_repository", "model_configuration", "statistics"],
    }


def test_model_metadata(client: httpx.Client) -> None:
    response = client.get("/v2/models/iris")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["name"] == "iris"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    assert metadata["outputs"][1]["shape"] == [-1, 3]


@pytest.mark.parametrize(
    "path", ["/v2/models/multi", "/v2/models/multi/versions/1", "/v2/models/multi/versions/2"]
)
def test_model_metadata_of_a_versioned_model(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["name"] == "multi"
    assert metadata["versions"] == ["1", "2"]


@pytest.mark.parametrize(
    "path",
    ["/v2/models/iris/ready", "/v2/models/multi/ready", "/v2/models/multi/versions/1/ready",
     "/v2/models/multi/versions/2/ready"],
)  # fmt: skip
def test_model_ready(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json()["ready"] is True


def test_infer_matches_scikit_learn(client: httpx.Client, iris, infer_body) -> None:
    rows = iris.features[ROWS]
    response = client.post("/v2/models/iris/infer", json=infer_body(rows, ["predict", "predict_proba"]))
    outputs = predictions(response)
    body = response.json()
    assert body["model_name"] == "iris"
    assert [o["datatype"] for o in body["outputs"]] == ["INT64", "FP64"]
    np.testing.assert_array_equal(outputs["predict"], iris.classifier.predict(rows))
    np.testing.assert_allclose(outputs["predict_proba"], iris.classifier.predict_proba(rows), rtol=1e-12)


def test_infer_outputs_predict_by_default(client: httpx.Client, iris, infer_body) -> None:
    rows = iris.features[ROWS]
    outputs = predictions(client.post("/v2/models/iris/infer", json=infer_body(rows)))
    assert list(outputs) == ["predict"]
    np.testing.assert_array_equal(outputs["predict"], iris.classifier.predict(rows))


def test_infer_with_flat_data(client: httpx.Client, iris, infer_body) -> None:
    rows = iris.features[ROWS]
    body = infer_body(rows)
    body["inputs"][0]["data"] = rows.ravel().tolist()
    outputs = predictions(client.post("/v2/models/iris/infer", json=body))
    np.testing.assert_array_equal(outputs["predict"], iris.classifier.predict(rows))


def test_infer_needs_no_content_type(client: httpx.Client, iris, infer_body) -> None:
    # tritonclient sends none; httpx sends none for raw `content`.
    rows = iris.features[ROWS]
    request = client.build_request(
        "POST", "/v2/models/iris/infer", content=json.dumps(infer_body(rows)).encode()
    )
    assert "content-type" not in request.headers
    outputs = predictions(client.send(request))
    np.testing.assert_array_equal(outputs["predict"], iris.classifier.predict(rows))


def test_plugin_alias_as_implementation(client: httpx.Client, iris, infer_body) -> None:
    # iris-alias's model-settings.json says "implementation": "sklearn".
    rows = iris.features[ROWS]
    outputs = predictions(
        client.post("/v2/models/iris-alias/infer", json=infer_body(rows, ["predict_proba"]))
    )
    np.testing.assert_allclose(outputs["predict_proba"], iris.classifier.predict_proba(rows), rtol=1e-12)


def test_two_versions_answer_differently(client: httpx.Client, iris, infer_body) -> None:
    rows = iris.features[ROWS]
    expected_v1, expected_v2 = iris.stump.predict(rows), iris.classifier.predict(rows)
    assert (expected_v1 != expected_v2).any()  # the test means something

    for version, expected in (("1", expected_v1), ("2", expected_v2)):
        response = client.post(f"/v2/models/multi/versions/{version}/infer", json=infer_body(rows))
        np.testing.assert_array_equal(predictions(response)["predict"], expected)
        assert response.json()["model_name"] == "multi"
        assert response.json()["model_version"] == version


def test_request_without_version_goes_to_highest_version(client: httpx.Client, iris, infer_body) -> None:
    rows = iris.features[ROWS]
    response = client.post("/v2/models/multi/infer", json=infer_body(rows))
    np.testing.assert_array_equal(predictions(response)["predict"], iris.classifier.predict(rows))
    assert response.json()["model_version"] == "2"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/multi/versions/3"),
        ("GET", "/v2/models/multi/versions/3/ready"),
        ("POST", "/v2/models/multi/versions/3/infer"),
        ("POST", "/v2/models/iris/versions/1/infer"),  # iris has no versions at all
    ],
)
def test_unknown_version_is_404(client: httpx.Client, iris, infer_body, method: str, path: str) -> None:
    response = client.request(method, path, json=infer_body(iris.features[:1]) if method == "POST" else None)
    assert response.status_code == 404
    assert "version" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/no-such-model"),
        ("GET", "/v2/models/no-such-model/ready"),
        ("POST", "/v2/models/no-such-model/infer"),
        ("GET", "/v2/models/no-such-model/versions/1"),
        ("GET", "/v2/models/no-such-model/versions/1/ready"),
        ("POST", "/v2/models/no-such-model/versions/1/infer"),
    ],
)
def test_unknown_model_is_404(client: httpx.Client, iris, infer_body, method: str, path: str) -> None:
    response = client.request(method, path, json=infer_body(iris.features[:1]) if method == "POST" else None)
    assert response.status_code == 404
    assert "no-such-model" in response.json()["error"]


# Responses and request ids


def test_response_echoes_request_id(client: httpx.Client, iris, infer_body) -> None:
    response = client.post("/v2/models/iris/infer", json=infer_body(iris.features[:1], id="my-request-42"))
    assert response.status_code == 200
    assert response.json()["id"] == "my-request-42"


def test_response_carries_a_generated_id(client: httpx.Client, iris, infer_body) -> None:
    ids = []
    for _ in range(2):
        response = client.post("/v2/models/iris/infer", json=infer_body(iris.features[:1]))
        assert response.status_code == 200
        ids.append(response.json()["id"])
    assert all(isinstance(i, str) and i for i in ids)
    assert ids[0] != ids[1]


def test_headers_reach_the_model_and_come_back(client: httpx.Client) -> None:
    body = {"id": "h1", "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    response = client.post("/v2/models/header-echo/infer", json=body, headers={"X-E2E-Echo": "hello"})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["id"] == "h1"
    assert payload["outputs"] == [{"name": "header", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]
    # The header the model set is an HTTP header of the response, not part of the JSON.
    assert response.headers["x-e2e-reply"] == "pong-hello"
    assert "headers" not in (payload.get("parameters") or {})
    assert "X-E2E-Reply" not in response.text
    assert response.headers["content-type"] == "application/json"


# Model repository extension


def index(client: httpx.Client, **body: object) -> dict[tuple[str, str | None], dict]:
    response = client.post("/v2/repository/index", json=body)
    assert response.status_code == 200, response.text
    return {(item["name"], item.get("version")): item for item in response.json()}


def test_repository_index(client: httpx.Client) -> None:
    items = index(client)
    expected = {
        ("iris", None), ("iris-alias", None), ("multi", "1"), ("multi", "2"), ("exploding", None),
        ("header-echo", None), ("scratch-httpx", None), ("scratch-triton", None),
    }  # fmt: skip
    assert expected <= set(items)
    for key in expected - {("scratch-httpx", None), ("scratch-triton", None)}:
        assert items[key]["state"] == "READY", items[key]


def test_repository_index_without_body(client: httpx.Client) -> None:
    response = client.post("/v2/repository/index")
    assert response.status_code == 200
    assert {"iris", "multi"} <= {item["name"] for item in response.json()}


def test_repository_load_and_unload(client: httpx.Client, iris, infer_body) -> None:
    rows = iris.features[ROWS]
    url = "/v2/models/scratch-httpx"
    assert client.post(f"{url}/infer", json=infer_body(rows)).status_code == 200

    response = client.post("/v2/repository/models/scratch-httpx/unload")
    assert response.status_code == 200, response.text

    response = client.post(f"{url}/infer", json=infer_body(rows))
    assert response.status_code in (404, 503)
    assert "scratch-httpx" in response.json()["error"]
    assert client.get(f"{url}/ready").status_code in (404, 503)
    assert index(client)[("scratch-httpx", None)]["state"] != "READY"
    assert ("scratch-httpx", None) not in index(client, ready=True)
    assert ("scratch-httpx", None) in index(client, ready=False)
    # Unloaded on request: the server does not count it against readiness.
    assert client.get("/v2/health/ready").status_code == 200

    response = client.post("/v2/repository/models/scratch-httpx/load")
    assert response.status_code == 200, response.text
    assert client.get(f"{url}/ready").status_code == 200
    assert index(client, ready=True)[("scratch-httpx", None)]["state"] == "READY"
    outputs = predictions(client.post(f"{url}/infer", json=infer_body(rows)))
    np.testing.assert_array_equal(outputs["predict"], iris.classifier.predict(rows))


def test_repository_index_ready_filter(client: httpx.Client) -> None:
    ready = index(client, ready=True)
    assert {("iris", None), ("multi", "1"), ("multi", "2")} <= set(ready)
    assert all(item["state"] == "READY" for item in ready.values())
    not_ready = index(client, ready=False)
    assert all(item["state"] != "READY" for item in not_ready.values())


@pytest.mark.parametrize("action", ["load", "unload"])
def test_repository_action_on_unknown_model_is_404(client: httpx.Client, action: str) -> None:
    response = client.post(f"/v2/repository/models/no-such-model/{action}")
    assert response.status_code == 404
    assert "no-such-model" in response.json()["error"]


def test_model_headers_cannot_break_the_response(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}
    # The model also asks for Content-Length: 1 and a binary framing header;
    # the server's own framing wins.
    response = client.post("/v2/models/header-echo/infer", json=body, headers={"X-E2E-Echo": "a"})
    assert response.status_code == 200
    assert response.headers.get_list("content-length") == [str(len(response.content))]
    assert "inference-header-content-length" not in response.headers
    assert "parameters" not in response.json()
    # A header value HTTP cannot carry is the model's fault: a clear 500, no crash.
    response = client.post("/v2/models/header-echo/infer", json=body, headers={"X-E2E-Unencodable": "1"})
    assert response.status_code == 500
    assert "header" in response.json()["error"]
    assert client.post("/v2/models/header-echo/infer", json=body).status_code == 200
