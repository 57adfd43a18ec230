"""Swagger UI: the server's whole API at /v2/docs, and one page per model at
/v2/models/{name}/docs whose paths and example request fit that model."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

from ..dataplane import DataPlane
from ..types import MetadataModelResponse
from .responses import JSONResponse

DOCS_URL = "/v2/docs"
OPENAPI_URL = "/v2/docs/dataplane.json"


def docs_router(app: FastAPI, dataplane: DataPlane) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def model_docs(name: str) -> HTMLResponse:
        dataplane.model(name)  # 404 for unknown models
        return get_swagger_ui_html(
            openapi_url=f"{app.root_path}/v2/models/{name}/docs/dataplane.json",
            title=f"{name} - {app.title}",
        )

    async def model_openapi(name: str) -> JSONResponse:
        metadata = await dataplane.model_metadata(name)
        return JSONResponse(model_openapi_document(app.openapi(), metadata))

    router.add_api_route("/v2/models/{name}/docs", model_docs, methods=["GET"])
    router.add_api_route("/v2/models/{name}/docs/dataplane.json", model_openapi, methods=["GET"])
    return router


def model_openapi_document(document: dict[str, Any], metadata: MetadataModelResponse) -> dict[str, Any]:
    """The server's OpenAPI document cut down to one model's endpoints."""
    document = copy.deepcopy(document)
    prefix = "/v2/models/{name}"
    paths = {}
    for path, operations in document["paths"].items():
        if not path.startswith(prefix) or "/versions/" in path:
            continue
        for operation in operations.values():
            operation["parameters"] = [p for p in operation.get("parameters", []) if p.get("name") != "name"]
        paths[path.replace("{name}", metadata.name)] = operations
    infer = paths.get(f"/v2/models/{metadata.name}/infer", {}).get("post")
    if infer is not None and metadata.inputs:
        infer["requestBody"]["content"]["application/json"]["example"] = {
            "inputs": [
                {
                    "name": tensor.name,
                    "shape": [max(dim, 1) for dim in tensor.shape],
                    "datatype": tensor.datatype.value,
                    "data": [],
                }
                for tensor in metadata.inputs
            ]
        }
    document["paths"] = paths
    document["info"]["title"] = f"{metadata.name} ({document['info']['title']})"
    return document
