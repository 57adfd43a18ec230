"""OIP's gRPC service through Ray Serve's gRPC proxy. The proxy registers
the service with `add_inference_service` (bytes in: the ingress parses
them as core's own server does) and calls the ingress's method of the same
name with the request bytes and Ray's gRPC context; the ingress answers
with core's servicer (core.grpc.servicer.unary_methods), whose status codes
and details reach the client through that context."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from core.grpc.servicer import SERVICE_NAME, UnaryMethod

# What gRPCOptions.grpc_servicer_functions names (a dotted import path).
SERVICER_FUNCTION = "core_ray.grpc_proxy.add_inference_service"
UNARY_METHODS = (
    "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
    "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload", "ModelConfig", "ModelStatistics",
)  # fmt: skip


def add_inference_service(servicer: Any, server: Any) -> None:
    """The service's unary methods, without (de)serializers: Ray's proxy puts
    its own behaviour in place of these and hands the bytes on."""

    async def unused(request: bytes, context: Any) -> bytes:
        raise NotImplementedError

    handlers = {name: grpc.unary_unary_rpc_method_handler(unused) for name in UNARY_METHODS}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


class Aborted(Exception):
    """The call ended with the status set on Ray's context (Ray sends it)."""


class RayContext:
    """What core's servicer asks of a gRPC context, over Ray's."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def time_remaining(self) -> float | None:
        return None

    def invocation_metadata(self) -> Iterable[tuple[str, str]]:
        return self._context.invocation_metadata() or ()

    async def send_initial_metadata(self, metadata: Iterable[tuple[str, str]]) -> None:
        # Ray's context has trailing metadata only: a model's response headers travel there.
        self._context.set_trailing_metadata(list(metadata))

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._context.set_code(code)
        self._context.set_details(details)
        raise Aborted(details)


class Serialized:
    """An answer already serialized: Ray's replica calls SerializeToString."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data


async def answer(method: UnaryMethod, data: bytes, context: Any) -> Serialized:
    function, serializer = method
    result = await function(data, RayContext(context))
    return Serialized(result if serializer is None else serializer(result))
