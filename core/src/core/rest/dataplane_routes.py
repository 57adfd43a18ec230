"""The OIP REST endpoints, each with and without `/versions/{version}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from ..dataplane import DataPlane
from ..types import (
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
)
from .body import read_body
from .errors import describe_request_error, error_response
from .responses import JSONResponse, dumps

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": InferenceErrorResponse} for status in (400, 404, 413, 500, 503)
}

# The infer body is parsed by hand (faster, and errors stay ours); this tells
# the OpenAPI document what it looks like.
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}
        },
    }
}


def _versioned(router: APIRouter, path: str, method: str, endpoint: Any, **kwargs: Any) -> None:
    """Register `endpoint` at `/v2/models/{name}{path}` and its versioned twin."""
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        router.add_api_route(prefix + path, endpoint, methods=[method], **kwargs)


def dataplane_router(dataplane: DataPlane, max_body_size: int) -> APIRouter:
    router = APIRouter(responses=_ERRORS)

    async def live() -> JSONResponse:
        return JSONResponse({"live": dataplane.live()})

    async def ready() -> JSONResponse:
        is_ready = dataplane.ready()
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def server_metadata() -> JSONResponse:
        return JSONResponse(dataplane.metadata())

    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        is_ready = dataplane.model_ready(name, version)
        return JSONResponse({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)

    async def model_metadata(name: str, version: str | None = None) -> JSONResponse:
        return JSONResponse(await dataplane.model_metadata(name, version))

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        body = await read_body(request, max_body_size)
        try:
            payload = InferenceRequest.model_validate_json(body)
        except ValidationError as error:
            return error_response(400, describe_request_error(error))
        result = await dataplane.infer(payload, name, version, request.headers)
        headers = None
        if result.parameters is not None and result.parameters.headers:
            headers, result.parameters.headers = result.parameters.headers, None
        return Response(dumps(result), media_type="application/json", headers=headers)

    router.add_api_route("/v2/health/live", live, methods=["GET"], tags=["health"])
    router.add_api_route("/v2/health/ready", ready, methods=["GET"], tags=["health"])
    for path in ("/v2", "/v2/"):
        router.add_api_route(
            path, server_metadata, methods=["GET"], tags=["metadata"],
            response_model=MetadataServerResponse, include_in_schema=path == "/v2",
        )
    _versioned(router, "/ready", "GET", model_ready, tags=["health"])
    _versioned(router, "", "GET", model_metadata, tags=["metadata"], response_model=MetadataModelResponse)
    _versioned(
        router, "/infer", "POST", infer, tags=["inference"],
        response_model=InferenceResponse, openapi_extra=_INFER_BODY,
    )
    return router
