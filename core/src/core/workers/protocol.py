"""The messages between the server process and a worker: pickled tuples,
each framed by its length, over one Unix socket pair per worker.

Many calls share the connection at once; every message carries the id of
the call it belongs to. An asyncio Protocol rather than StreamReader: the
frames are parsed straight from `data_received`, with no task per read.

Server to worker: `(call_id, kind, args)`. Worker to server:
`(call_id, status, value)`, `status` one of the constants below; a call
that streams sends any number of ITEM messages before its END or ERROR."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable
from typing import Any, cast

from ..errors import CoreError

logger = logging.getLogger(__name__)

OK = "ok"
ERROR = "error"
ITEM = "item"
END = "end"

# Call kinds
LOAD = "load"
# The most replicas the model's runtime allows (`Model.replica_limit`), asked
# before its replicas are placed: a custom environment's runtime may not
# import in the server process.
REPLICA_LIMIT = "replica_limit"
UNLOAD = "unload"
INFER_HTTP = "infer_http"
INFER_GRPC = "infer_grpc"
CALL = "call"
STREAM = "stream"
FLUSH_METRICS = "flush_metrics"
# The heartbeat: answered at once by a worker whose event loop runs.
PING = "ping"
# Stop working on the call with this message's id: its caller stopped waiting
# (deadline, cancelled request). Not answered.
CANCEL = "cancel"

_HEADER = 8  # frame length, little-endian; frames past 4 GiB are possible (gRPC allows 2 GiB)


def encode_error(error: CoreError) -> tuple[int, str, str]:
    return (error.status_code, error.grpc_code, error.message)


def decode_error(value: tuple[int, str, str]) -> CoreError:
    """The worker's CoreError, rebuilt with its HTTP status and gRPC code
    (subclasses have their own constructors, so they are not pickled)."""
    status_code, grpc_code, message = value
    error = CoreError(message)
    error.status_code, error.grpc_code = status_code, grpc_code
    return error


class FramedProtocol(asyncio.Protocol):
    """Sends and receives pickled messages; calls `on_message` for each one
    received and `on_closed` once, when the other side is gone."""

    def __init__(self, on_message: Callable[[Any], None], on_closed: Callable[[], None]) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _HEADER:
            size = int.from_bytes(buffer[start : start + _HEADER], "little")
            end = start + _HEADER + size
            if len(buffer) < end:
                break
            message = pickle.loads(buffer[start + _HEADER : end])
            start = end
            try:
                self._on_message(message)
            except Exception:
                logger.exception("unhandled error on a worker message")
        if start:
            del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._on_closed()

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def send(self, message: Any) -> None:
        """Queue a message; the messages queued during one turn of the event
        loop go out together, in one system call, at the end of the turn."""
        if self._transport is None:
            raise ConnectionError("the connection is closed")
        data = pickle.dumps(message, protocol=5)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing += (len(data).to_bytes(_HEADER, "little"), data)

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is not None:
            self._transport.writelines(outgoing)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
