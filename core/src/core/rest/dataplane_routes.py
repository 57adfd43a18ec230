"""The OIP REST endpoints, each with and without `/versions/{version}`."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..dataplane import DataPlane
from ..types import (
    InferenceErrorResponse,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
)
from .body import read_body
from .fast_infer import infer_body
from .responses import JSONResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": InferenceErrorResponse} for status in (400, 404, 413, 500, 503)
}

# The infer body is parsed by hand (faster, and errors stay ours); this tells
# the OpenAPI document what it looks like.
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
    }
}


def versioned_route(router: APIRouter, path: str, method: str, endpoint: Any, **kwargs: Any) -> None:
    """Register `endpoint` at `/v2/models/{name}/versions/{version}{path}` and
    at `/v2/models/{name}{path}`, where `version` is not a parameter at all."""
    router.add_api_route(
        f"/v2/models/{{name}}/versions/{{version}}{path}", endpoint, methods=[method], **kwargs
    )
    router.add_api_route(f"/v2/models/{{name}}{path}", _without_version(endpoint), methods=[method], **kwargs)


def _without_version(endpoint: Any) -> Any:
    @functools.wraps(endpoint)
    async def unversioned(*args: Any, **kwargs: Any) -> Any:
        return await endpoint(*args, **kwargs)

    signature = inspect.signature(endpoint)
    unversioned.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "version"]
    )
    return unversioned


def model_ready_response(dataplane: DataPlane, name: str, version: str | None = None) -> JSONResponse:
    """`{"name", "ready"}`: 200 when ready, 503 when not, 404 for unknown models."""
    is_ready = dataplane.model_ready(name, version)
    return JSONResponse({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)


def dataplane_router(dataplane: DataPlane, max_body_size: int) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES)

    async def live() -> JSONResponse:
        return JSONResponse({"live": dataplane.live()})

    async def ready() -> JSONResponse:
        is_ready = dataplane.ready()
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def server_metadata() -> JSONResponse:
        return JSONResponse(dataplane.metadata())

    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        return model_ready_response(dataplane, name, version)

    async def model_metadata(name: str, version: str | None = None) -> JSONResponse:
        return JSONResponse(await dataplane.model_metadata(name, version))

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        # Normally answered by FastInferApp before FastAPI; kept for the
        # OpenAPI document and for apps that mount the router alone.
        body = await read_body(request.headers, request.receive, max_body_size)
        content, headers = await infer_body(dataplane, name, version, request.headers, body)
        response = Response(content)
        response.raw_headers.extend(headers)
        return response

    router.add_api_route("/v2/health/live", live, methods=["GET"], tags=["health"])
    router.add_api_route("/v2/health/ready", ready, methods=["GET"], tags=["health"])
    for path in ("/v2", "/v2/"):
        router.add_api_route(
            path,
            server_metadata,
            methods=["GET"],
            tags=["metadata"],
            response_model=MetadataServerResponse,
            include_in_schema=path == "/v2",
        )
    versioned_route(router, "/ready", "GET", model_ready, tags=["health"])
    versioned_route(
        router, "", "GET", model_metadata, tags=["metadata"], response_model=MetadataModelResponse
    )
    versioned_route(
        router,
        "/infer",
        "POST",
        infer,
        tags=["inference"],
        response_model=InferenceResponse,
        openapi_extra=INFER_BODY,
    )
    return router
