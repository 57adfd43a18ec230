"""`CoreIngress`: the deployment behind Ray Serve's HTTP proxy. Each replica
runs core's own REST app (the routes, errors and binary tensors of `core
start`) over a DataPlane whose registry holds a `RayModel` per model of the
repository; inference bytes go on to the models' replicas unparsed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp

from core.grpc.servicer import InferenceServicer, unary_methods
from core.observability import Observability
from core.process import configure_process
from core.registry import ModelRegistry
from core.rest.app import create_app
from core.rest.fast_infer import FastInferApp
from core.settings import ModelSettings, Settings

from . import grpc_proxy
from .cluster import Cluster
from .model import RayModel

logger = logging.getLogger(__name__)


class CoreIngress:
    # Ray Serve awaits an async constructor.
    async def __init__(self, server: dict[str, Any], env_vars: dict[str, str]) -> None:  # type: ignore[misc]
        settings = Settings.model_validate(server)
        configure_process(settings)
        self.cluster = Cluster(settings, env_vars)
        # Its metrics go to the shared folder, as a worker's do.
        self.observability = Observability(settings, worker=True)

        def build(model: ModelSettings) -> RayModel:
            return RayModel(model, self.cluster)

        self.dataplane = self.observability.dataplane(ModelRegistry(build, settings))
        app = create_app(settings, self.dataplane)
        self._rest = self.observability.rest_app(
            FastInferApp(app, self.dataplane, settings.max_request_body_size), app
        )
        self._grpc = unary_methods(InferenceServicer(self.dataplane))
        # Serving starts now (liveness answers); readiness follows the models.
        self._loading = asyncio.create_task(self._load())
        self._flushing = asyncio.create_task(self._flush_metrics())

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return self._rest

    async def _load(self) -> None:
        try:
            if self.cluster.settings.load_models_at_startup:
                await self.dataplane.load_repository()
        except Exception:
            logger.exception("loading the models failed")
        self.dataplane.started = True

    async def _flush_metrics(self) -> None:
        store = self.observability.store
        while store is not None:
            await asyncio.sleep(1.0)
            store.flush()

    async def _answer_grpc(self, method: str, request: bytes, grpc_context: Any) -> grpc_proxy.Serialized:
        return await grpc_proxy.answer(self._grpc[method], request, grpc_context)


def _grpc_method(name: str) -> Any:
    """The ingress's method for the RPC `name`: Ray's gRPC proxy calls it by
    that name, with the request bytes and its context as `grpc_context`."""

    async def method(self: CoreIngress, request: bytes, grpc_context: Any) -> grpc_proxy.Serialized:
        return await self._answer_grpc(name, request, grpc_context)

    method.__name__ = method.__qualname__ = name
    return method


for _name in grpc_proxy.UNARY_METHODS:
    setattr(CoreIngress, _name, _grpc_method(_name))
