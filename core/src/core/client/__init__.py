"""Open Inference Protocol clients: REST (httpx) and gRPC (grpcio), sync and
async, with one API and KServe's request/response types.

    from core.client import RESTClient
    with RESTClient("http://127.0.0.1:8080") as client:
        response = client.infer("iris", numpy_rows)
        labels = response.as_numpy("predict")

They work with any OIP server (core, KServe, MLServer, Triton).
`core.client.kserve` has KServe's own client classes on top of them."""

from __future__ import annotations

from typing import Any

from .errors import ClientError
from .grpc import AsyncGRPCClient, GRPCClient
from .rest import AsyncRESTClient, RESTClient
from .retry import RetryPolicy
from .types import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput

__all__ = [
    "AsyncGRPCClient",
    "AsyncRESTClient",
    "ClientError",
    "GRPCClient",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "RESTClient",
    "RequestedOutput",
    "RetryPolicy",
    "connect",
]


def connect(url: str, transport: str | None = None, *, asynchronous: bool = False, **options: Any) -> Any:
    """The client for `url`: gRPC for `transport="grpc"` or a grpc:// or
    grpcs:// URL, REST otherwise; AsyncRESTClient / AsyncGRPCClient when
    `asynchronous`. `options` go to the client's constructor."""
    if transport is None:
        transport = "grpc" if url.startswith(("grpc://", "grpcs://")) else "rest"
    if transport == "rest":
        return (AsyncRESTClient if asynchronous else RESTClient)(url, **options)
    if transport == "grpc":
        return (AsyncGRPCClient if asynchronous else GRPCClient)(url, **options)
    raise ValueError(f"transport must be 'rest' or 'grpc', not {transport!r}")
