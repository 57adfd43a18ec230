"""Triton's model configuration and statistics extensions over REST."""

from __future__ import annotations

from fastapi import APIRouter

from ..dataplane import DataPlane
from .dataplane_routes import ERROR_RESPONSES, versioned_route
from .responses import JSONResponse


def triton_router(dataplane: DataPlane) -> APIRouter:
    """Mounted before the OIP routes: `/v2/models/stats` must not be taken
    for the metadata of a model named `stats`."""
    router = APIRouter(responses=ERROR_RESPONSES)

    async def config(name: str, version: str | None = None) -> JSONResponse:
        return JSONResponse(await dataplane.model_config(name, version))

    async def all_statistics() -> JSONResponse:
        return JSONResponse({"model_stats": await dataplane.model_statistics()})

    async def statistics(name: str, version: str | None = None) -> JSONResponse:
        return JSONResponse({"model_stats": await dataplane.model_statistics(name, version)})

    versioned_route(router, "/config", "GET", config, tags=["model configuration"])
    router.add_api_route("/v2/models/stats", all_statistics, methods=["GET"], tags=["statistics"])
    versioned_route(router, "/stats", "GET", statistics, tags=["statistics"])
    return router
