"""The REST server's HTTP/1.1 connections: uvicorn's httptools protocol with
the connection-level limits it lacks, so that no slow, idle or oversized
client holds the server's memory or file descriptors:

- the request line plus headers are bounded in size and in count (431, and
  the connection closes);
- the headers must be complete within `http_header_timeout` of the
  connection's opening, or of the end of the previous response on a
  keep-alive connection (the connection closes, with a 408 when part of a
  request had arrived);
- an idle keep-alive connection closes after `http_keep_alive_timeout`
  (uvicorn's own `timeout_keep_alive`);
- past `http_max_connections` open connections, a new one is answered 503
  and closed at once.

Request bodies are bounded by `core.rest.limits.BodyLimits`.

The hot path pays for this with a few attribute reads and a counter per
received chunk: the header timer is armed once per connection, and again
only when a chunk leaves a request's headers incomplete; the exact header
size is only worked out when the bytes received since the request began
pass the limit."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ..errors import CoreError, HeadersTooLarge, RequestTimeout, TooManyConnections
from ..settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HTTPLimits:
    max_header_size: int
    max_headers: int
    header_timeout: float
    keep_alive_timeout: float
    max_connections: int


def http_protocol(settings: Settings, max_connections: int) -> type[LimitedHTTPProtocol]:
    """The protocol class to give `uvicorn.Config(http=...)`, with the limits
    of `settings`, and at most `max_connections` open connections (see
    `core.ports.connection_limits`)."""
    limits = HTTPLimits(
        max_header_size=settings.http_max_header_size,
        max_headers=settings.http_max_headers,
        header_timeout=settings.http_header_timeout,
        keep_alive_timeout=settings.http_keep_alive_timeout,
        max_connections=max_connections,
    )
    return type("ConfiguredHTTPProtocol", (LimitedHTTPProtocol,), {"limits": limits})


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


class LimitedHTTPProtocol(HttpToolsProtocol):
    limits: ClassVar[HTTPLimits]  # set by `http_protocol`

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]
        # Between the end of a request and the end of the next one's headers.
        self._in_head = True
        self._head_bytes = 0  # received while _in_head: at least the head's size
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limit = self.limits.max_connections
        if len(self.connections) >= limit:
            self.transport = transport
            self._refused = True
            _warn(
                "connections", "refused a connection: %d connections are open (http_max_connections)", limit
            )
            self._close_with(
                TooManyConnections(f"the server has {limit} open connections, its limit; retry later")
            )
            return
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, plus the head's byte count and checks.
        idle = self.timeout_keep_alive_task
        if idle is not None:
            idle.cancel()
            self.timeout_keep_alive_task = None
        if self._in_head:
            self._head_bytes += len(data)
        elif self.cycle is not None and self.cycle.response_complete:
            # The rest of a body the app answered without reading: the
            # connection cannot carry another request.
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refused:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head:  # this chunk left a request's headers incomplete
            self._check_partial_head(idle)

    def _check_partial_head(self, idle: asyncio.TimerHandle | None) -> None:
        limits = self.limits
        if self._head_bytes > limits.max_header_size:
            self._refuse_head(self._head_bytes)
        elif self.headers is not None and len(self.headers) > limits.max_headers:
            self._refuse_head(None)
        elif self._head_timer is None and not self.transport.is_closing():
            if idle is None:  # the previous request is still being answered
                self._head_timer = self.loop.call_later(limits.header_timeout, self._head_timed_out)
            else:
                # From the end of the previous response; never before the
                # keep-alive timeout that let the connection wait that long.
                ended = idle.when() - self.timeout_keep_alive
                deadline = ended + max(limits.header_timeout, self.timeout_keep_alive)
                self._head_timer = self.loop.call_at(deadline, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            self._refuse_head(None)
            raise _HeadRefused
        if self._head_bytes > limits.max_header_size:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16
            if size > limits.max_header_size:
                self._refuse_head(size)
                raise _HeadRefused
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The next request's head arrived before this one's answer: its time starts after it.
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)
            return
        if self._head_bytes == 0:
            self.transport.close()
            return
        _warn(
            "header-timeout",
            "closed a connection whose request headers took over %g s",
            self.limits.header_timeout,
        )
        self._close_with(
            RequestTimeout(
                f"the request headers were not complete within {self.limits.header_timeout:g} s"
                " (http_header_timeout)"
            )
        )

    def _refuse_head(self, size: int | None) -> None:
        limits = self.limits
        if size is None:
            message = f"the request has more than {limits.max_headers} headers (http_max_headers)"
        else:
            message = (
                f"the request line and headers ({size} bytes or more) exceed the limit of"
                f" {limits.max_header_size} bytes (http_max_header_size)"
            )
        _warn("header-size", "refused a request: %s", message)
        self._refused = True
        self._close_with(HeadersTooLarge(message))

    def _close_with(self, error: CoreError) -> None:
        """Answer `error` and close the connection, whatever it was doing."""
        self._refused = True
        self._in_head = False
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined request refused while the previous one is answered:
            # an answer now would land inside that response.
            self.transport.close()
        elif not self.transport.is_closing():
            content = orjson.dumps({"error": error.message})
            self.transport.write(
                b"".join(
                    [
                        STATUS_LINE[error.status_code],
                        b"content-type: application/json\r\ncontent-length: ",
                        str(len(content)).encode(),
                        b"\r\nconnection: close\r\n\r\n",
                        content,
                    ]
                )
            )
            self.transport.close()


# Refusals are logged at most once per this many seconds each, not once per connection.
_WARN_INTERVAL = 10.0
_last_warned: dict[str, float] = {}


def _warn(kind: str, message: str, *args: object) -> None:
    now = time.monotonic()
    if now - _last_warned.get(kind, -_WARN_INTERVAL) >= _WARN_INTERVAL:
        _last_warned[kind] = now
        logger.warning(message, *args)
