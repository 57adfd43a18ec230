"""Swagger UI and OpenAPI documents, for the server and for each model."""

from __future__ import annotations

import httpx
import pytest


def test_swagger_ui(client: httpx.Client) -> None:
    response = client.get("/v2/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/v2/docs/dataplane.json" in response.text


def test_openapi_document(client: httpx.Client) -> None:
    response = client.get("/v2/docs/dataplane.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/{name}", "/v2/models/{name}/ready",
        "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer", "/v2/repository/index",
    ):  # fmt: skip
        assert path in paths, path
    assert "post" in paths["/v2/models/{name}/infer"]


def test_model_swagger_ui(client: httpx.Client) -> None:
    response = client.get("/v2/models/iris/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/v2/models/iris/docs/dataplane.json" in response.text


def test_model_openapi_document(client: httpx.Client) -> None:
    response = client.get("/v2/models/iris/docs/dataplane.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v2/models/iris", "/v2/models/iris/ready", "/v2/models/iris/infer"} <= set(paths)
    assert not any("{name}" in path for path in paths)
    example = paths["/v2/models/iris/infer"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert example["inputs"][0]["name"] == "input-0"
    assert example["inputs"][0]["datatype"] == "FP32"


@pytest.mark.parametrize("path", ["/v2/models/ghost/docs", "/v2/models/ghost/docs/dataplane.json"])
def test_unknown_model_docs_are_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "ghost" in response.json()["error"]
