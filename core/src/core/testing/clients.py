"""The three ways the conformance kit (`core.testing.conformance`) calls a
server, with core.client: REST with JSON, REST with binary tensors, gRPC
with raw contents."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..client import AsyncGRPCClient, AsyncRESTClient, GRPCClient, RESTClient
from .server import ServerProcess

TRANSPORTS = ("rest-json", "rest-binary", "grpc")


@contextmanager
def client_for(server: ServerProcess, transport: str, timeout: float) -> Iterator[Any]:
    """A core.client client of `server` over `transport` (one of
    `TRANSPORTS`), without retries: a failure must show, not be tried again."""
    if transport == "grpc":
        with GRPCClient(f"127.0.0.1:{server.grpc_port}", timeout=timeout, retries=0) as grpc:
            yield grpc
    elif transport in TRANSPORTS:
        binary = transport == "rest-binary"
        with RESTClient(server.url, timeout=timeout, retries=0, binary=binary) as rest:
            yield rest
    else:
        raise ValueError(f"no transport {transport!r}; they are {', '.join(TRANSPORTS)}")


def infer_rows(
    client: Any, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None
) -> Any:
    """The InferResponse of `model` to `inputs` (arrays by input name),
    asking for `outputs` (None: the model's default ones)."""
    return client.infer(model, dict(inputs), outputs=list(outputs) if outputs else None)


def executions(statistics: Mapping[str, Any]) -> int:
    """A model's executions so far (batches, with adaptive batching), from
    its statistics (Triton's extension)."""
    (stat,) = statistics["model_stats"]
    return int(stat.get("execution_count", 0))


class EitherWayClient:
    """A core.client client of `kind` ("rest", "rest-async", "grpc",
    "grpc-async") called the same way whichever it is: the async ones'
    coroutines and async iterators run to completion on `loop`, a sync
    stream is read into a list. Tests that run every call on all four
    clients use it."""

    CLASSES = {
        "rest": RESTClient,
        "rest-async": AsyncRESTClient,
        "grpc": GRPCClient,
        "grpc-async": AsyncGRPCClient,
    }

    def __init__(self, kind: str, url: str, loop: asyncio.AbstractEventLoop, **options: Any) -> None:
        self.kind = kind
        self.loop = loop
        self.rest = kind.startswith("rest")
        cls = self.CLASSES[kind]

        async def make() -> Any:  # a grpc.aio channel belongs to the loop it is made in
            return cls(url, **options)

        self.client = loop.run_until_complete(make())

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                return self.loop.run_until_complete(result)
            if inspect.isasyncgen(result):
                return self.loop.run_until_complete(_collect(result))
            return list(result) if inspect.isgenerator(result) else result

        return call

    def close(self) -> None:
        result = self.client.close()
        if inspect.isawaitable(result):
            self.loop.run_until_complete(result)


async def _collect(items: Any) -> list[Any]:
    return [item async for item in items]
