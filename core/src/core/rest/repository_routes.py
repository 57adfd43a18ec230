"""The model-repository extension over REST."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError

from ..dataplane import DataPlane
from ..errors import BadRequest
from ..types import RepositoryIndexRequest, RepositoryIndexResponse
from .body import read_body
from .errors import describe_request_error
from .responses import JSONResponse


def repository_router(dataplane: DataPlane) -> APIRouter:
    router = APIRouter(tags=["model repository"])

    async def index(request: Request) -> JSONResponse:
        body = await read_body(request.headers, request.receive, dataplane.settings.max_request_body_size)
        try:
            query = (
                RepositoryIndexRequest.model_validate_json(body) if body.strip() else RepositoryIndexRequest()
            )
        except ValidationError as error:
            raise BadRequest(describe_request_error(error)) from None
        return JSONResponse(dataplane.repository_index(query.ready).model_dump(mode="json"))

    async def load(name: str) -> JSONResponse:
        await dataplane.repository_load(name)
        return JSONResponse({})

    async def unload(name: str) -> JSONResponse:
        await dataplane.repository_unload(name)
        return JSONResponse({})

    router.add_api_route(
        "/v2/repository/index",
        index,
        methods=["POST"],
        response_model=RepositoryIndexResponse,
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": RepositoryIndexRequest.model_json_schema()}}
            }
        },
    )
    router.add_api_route("/v2/repository/models/{name}/load", load, methods=["POST"])
    router.add_api_route("/v2/repository/models/{name}/unload", unload, methods=["POST"])
    return router
