"""The REST application: OIP endpoints, repository extension, docs."""

from __future__ import annotations

from fastapi import FastAPI

from ..dataplane import DataPlane
from ..settings import Settings
from ..version import __version__
from .dataplane_routes import dataplane_router
from .docs import DOCS_URL, OPENAPI_URL, docs_router
from .errors import install_error_handlers
from .repository_routes import repository_router
from .responses import JSONResponse


def create_app(settings: Settings, dataplane: DataPlane) -> FastAPI:
    app = FastAPI(
        title=f"{settings.server_name} inference server",
        version=__version__,
        description="Open Inference Protocol (V2) REST API.",
        docs_url=DOCS_URL,
        openapi_url=OPENAPI_URL,
        redoc_url=None,
        root_path=settings.root_path,
        default_response_class=JSONResponse,
    )
    install_error_handlers(app)
    app.include_router(dataplane_router(dataplane, settings.max_request_body_size))
    app.include_router(repository_router(dataplane))
    app.include_router(docs_router(app, dataplane))
    return app
