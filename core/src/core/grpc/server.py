"""The grpc.aio server: the inference service, grpc.health.v1 and server
reflection, on `settings.grpc_port`, in the event loop that runs uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from ..dataplane import DataPlane
from ..errors import PortUnavailable
from ..settings import Settings
from .generated import inference_pb2
from .servicer import SERVICE_NAME, InferenceServicer, method_handlers

logger = logging.getLogger(__name__)

# How often Watch subscribers learn of readiness changes; Check computes afresh.
_HEALTH_POLL_SECONDS = 0.5


class ReadinessHealth(health.aio.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1.Health: SERVING while the server is ready, NOT_SERVING
    otherwise, for the overall health ("") and for the inference service."""

    def __init__(self, dataplane: DataPlane) -> None:
        super().__init__()
        self.dataplane = dataplane

    async def Check(self, request: Any, context: Any) -> Any:
        await self.refresh()
        return await super().Check(request, context)

    async def refresh(self) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.dataplane.ready()
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE_NAME):
            await self.set(service, status)

    async def follow(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(_HEALTH_POLL_SECONDS)


def _reflection_pool() -> Any:
    """inference.proto's private descriptor pool (see hatch_build.py), with
    the health and reflection protos added so reflection describes all three."""
    pool = inference_pb2.DESCRIPTOR.pool
    for module in (health_pb2, reflection_pb2):
        try:
            pool.FindFileByName(module.DESCRIPTOR.name)
        except KeyError:
            pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    return pool


class GRPCServer:
    def __init__(
        self,
        settings: Settings,
        dataplane: DataPlane,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        max_connections: int | None = None,
    ) -> None:
        self.settings = settings
        self.max_connections = max_connections
        self.dataplane = dataplane
        # Metrics and tracing (see core.observability); none when both are off.
        self.interceptors = list(interceptors)
        self._server: grpc.aio.Server | None = None
        self._health: ReadinessHealth | None = None
        self._follow: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve; raises PortUnavailable if the port cannot be bound."""
        limit = self.settings.grpc_max_message_length or self.settings.max_request_body_size
        server = grpc.aio.server(
            interceptors=self.interceptors or None,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # gRPC sets SO_REUSEPORT by default: a second server on the
                # same port would bind too and silently take half the connections.
                ("grpc.so_reuseport", 0),
                # A client that connects and sends nothing is dropped, as on
                # the HTTP port; past the connection limit, new ones are refused.
                ("grpc.server_handshake_timeout_ms", int(self.settings.http_header_timeout * 1000)),
                *(
                    [("grpc.max_allowed_incoming_connections", self.max_connections)]
                    if self.max_connections
                    else []
                ),
            ],
        )
        server.add_generic_rpc_handlers((method_handlers(InferenceServicer(self.dataplane)),))
        self._health = ReadinessHealth(self.dataplane)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server, pool=_reflection_pool()
        )
        address = f"{self.settings.host}:{self.settings.grpc_port}"
        try:
            server.add_insecure_port(address)
        except RuntimeError:
            raise PortUnavailable(
                f"gRPC port {address} cannot be bound: in use, or not an address of this host"
            ) from None
        await server.start()
        self._server = server
        self._follow = asyncio.create_task(self._health.follow())
        logger.info("gRPC server listening on %s", address)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let running ones finish for up to `grace` seconds."""
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
