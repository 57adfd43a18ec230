"""The REST server's HTTP/1.1 connections: uvicorn's httptools protocol with
the limits it lacks, so that no slow, idle or oversized client holds the
server's memory or file descriptors. Every route gets them, before any
route runs:

- the request line plus headers are bounded in size and in count (431, and
  the connection closes);
- the headers must be complete within `http_header_timeout` of the
  connection's opening, or of the end of the previous response on a
  keep-alive connection (the connection closes, with a 408 when part of a
  request had arrived);
- the body: a Content-Length over `max_request_body_size` is answered 413
  before the body is read and before any route runs; a chunked body is
  counted as it arrives and answered 413 once past the limit; a body part
  that does not come within `http_body_timeout` of the previous one is
  answered 408. Either way the connection closes (the rest of the body is
  unread), and the route, if it runs, reads a disconnect and its answer is
  dropped;
- an idle keep-alive connection closes after `http_keep_alive_timeout`
  (uvicorn's own `timeout_keep_alive`);
- past `http_max_connections` open connections, a new one is answered 503
  and closed at once.

The hot path pays for this with a few attribute reads per received chunk
and a look at the headers for Content-Length: the header timer is armed
once per connection, and again only when a chunk leaves a request's headers
incomplete; the body timer only when a chunk leaves a body incomplete; the
exact header size is only worked out when the bytes received since the
request began pass the limit. (A timer or an ASGI wrapper per request cost
several per cent of the 1-row throughput.)"""

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

from ..errors import CoreError, HeadersTooLarge, PayloadTooLarge, RequestTimeout, TooManyConnections
from ..settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HTTPLimits:
    max_header_size: int
    max_headers: int
    header_timeout: float
    keep_alive_timeout: float
    max_connections: int
    max_body_size: int
    body_timeout: float


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
        max_body_size=settings.max_request_body_size,
        body_timeout=settings.http_body_timeout,
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
        # Between a request's headers and the end of its body.
        self._in_body = False
        self._count_body = False  # no Content-Length: counted as it arrives
        self._body_bytes = 0
        self._body_seen = 0.0  # loop time of its last part
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limit = self.limits.max_connections
        if len(self.connections) >= limit:
            self.transport = transport
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
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
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
        if self._in_head:
            if self._head_bytes:  # this chunk left a request's headers incomplete
                self._check_partial_head(idle)
        elif self._in_body:  # ... or its body
            self._body_seen = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_at(
                    self._body_seen + self.limits.body_timeout, self._body_timed_out
                )

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
        self._count_body = True
        for name, value in self.headers:
            if name == b"content-length":
                self._count_body = False  # httptools delivers no more than it says
                if value.isdigit() and int(value) > limits.max_body_size:
                    self._refuse(
                        PayloadTooLarge(
                            f"request body of {int(value)} bytes exceeds the limit of "
                            f"{limits.max_body_size} bytes (max_request_body_size)"
                        )
                    )
                    raise _HeadRefused
                break
        self._body_bytes = 0
        self._in_body = True
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._count_body:
            self._body_bytes += len(body)
            if self._body_bytes > self.limits.max_body_size:
                self._refuse(
                    PayloadTooLarge(
                        f"request body exceeds the limit of {self.limits.max_body_size} bytes "
                        "(max_request_body_size)"
                    )
                )
                raise _HeadRefused
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the route has not read what came: not the client's delay
            self._body_seen = now
        due = self._body_seen + self.limits.body_timeout
        if now < due:
            self._body_timer = self.loop.call_at(due, self._body_timed_out)
            return
        _warn(
            "body-timeout",
            "closed a connection whose request body stalled for %g s",
            self.limits.body_timeout,
        )
        self._refuse(
            RequestTimeout(
                f"no part of the request body arrived for {self.limits.body_timeout:g} s (http_body_timeout)"
            )
        )

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
        self._close_with(HeadersTooLarge(message))

    def _refuse(self, error: CoreError) -> None:
        """Answer a request whose body breaks a limit, and close: a route
        already running for it reads a disconnect, and its answer is dropped."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self._in_body:
            if cycle.response_started:  # too late for an answer
                self._refused = True
                self.transport.close()
            else:
                cycle.response_complete = True  # ours takes its place
                self._close_with(error)
            cycle.disconnected = True
            cycle.message_event.set()
            self._in_body = False
            return
        self._close_with(error)

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
