"""The three ways the conformance kit (`core.testing.conformance`) calls a
server, with core.client: REST with JSON, REST with binary tensors, gRPC
with raw contents."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..client import GRPCClient, RESTClient
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
