"""The REST application: OIP endpoints, Triton's extensions, docs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..dataplane import DataPlane
from ..plugins.manager import get_plugin_manager
from ..settings import Settings
from ..types import InferenceRequest
from ..version import __version__
from .dataplane_routes import dataplane_router
from .docs import DOCS_URL, OPENAPI_URL, docs_router
from .errors import install_error_handlers
from .repository_routes import repository_router
from .responses import JSONResponse
from .streaming_routes import streaming_router
from .triton_routes import triton_router
from .v1 import v1_router


def create_app(settings: Settings, dataplane: DataPlane) -> FastAPI:
    app = FastAPI(
        title=f"{settings.server_name} inference server",
        version=__version__,
        description="Open Inference Protocol (V2) REST API, and KServe's V1 protocol.",
        docs_url=DOCS_URL,
        openapi_url=OPENAPI_URL,
        redoc_url=None,
        root_path=settings.root_path,
        default_response_class=JSONResponse,
    )
    install_error_handlers(app)
    app.include_router(triton_router(dataplane))
    app.include_router(dataplane_router(dataplane, settings.max_request_body_size))
    app.include_router(streaming_router(dataplane, settings.max_request_body_size))
    app.include_router(repository_router(dataplane))
    app.include_router(v1_router(dataplane, settings.max_request_body_size))
    app.include_router(docs_router(app, dataplane))
    # After the core's own: a plugin's route cannot shadow one of them.
    for router in get_plugin_manager().rest_routers(dataplane, settings):
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the InferenceRequest schema (the infer body is
    parsed by hand, so FastAPI cannot see it), minus its 422 responses (this
    server answers bad input with 400)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        request_schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(request_schema.pop("$defs", {}))
        schemas["InferenceRequest"] = request_schema
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for operations in document["paths"].values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        app.openapi_schema = document
    return app.openapi_schema
