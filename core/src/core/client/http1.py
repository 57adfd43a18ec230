"""Lean HTTP/1.1 over plain TCP, for the clients' hot paths: kept-alive
connections, each request written at once, answers parsed by httptools
(uvicorn's parser: core depends on uvicorn[standard]).

httpx costs a small request about 360 µs of client CPU (measured in
benchmarks/RESULTS.md, "Clients"): its pure-Python HTTP/1.1 (httpcore, h11,
head and body in two writes) and its client layers. That is more than the
server spends answering, so where it can, the client goes this shorter
way, and httpx stays for all else (TLS, proxies, auth flows, HTTP/2,
streams):

- `BlockingConnections`: RESTClient's requests to a plain http:// URL;
- `KeepAliveTransport`: an httpx transport for AsyncRESTClient, used by
  the batch runner (`core infer`).

No TLS, no proxies, no HTTP/2, no HEAD requests, no 1xx answers."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from urllib.parse import urlsplit

import httpx


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """A lean HTTP/1.1 transport for httpx over plain TCP: kept-alive
    connections, one request at a time each, responses parsed by httptools
    (uvicorn's parser: core depends on uvicorn[standard]). Per small request
    it costs the client a third of the CPU time of httpx's own connection
    pool, which is what bounds a batch of small requests. The batch runner
    uses it for plain http:// URLs; anyone who wants that lower per-request
    cost can give it to AsyncRESTClient(transport=KeepAliveTransport()). No
    TLS, no proxies, no HTTP/2, no HEAD requests."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":  # its answer has a Content-Length and no body: not parsed here
            raise httpx.UnsupportedProtocol("KeepAliveTransport does not send HEAD requests")
        timeouts = request.extensions.get("timeout", {})
        address = (request.url.host, request.url.port or 80)
        idle = self._idle.setdefault(address, [])
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
        head.extend(b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw)
        message = b"".join((*head, b"\r\n", await request.aread()))
        while True:
            connection = idle.pop() if idle else None
            if connection is None:
                connection = await _Connection.open(address, timeouts.get("connect"))
            elif connection.closed:
                continue
            try:
                status, headers, content = await connection.exchange(message, timeouts.get("read"))
            except httpx.ReadError:
                if connection.reused and not connection.answered:
                    continue  # the server had closed the idle connection: the request was not read
                raise
            if connection.keep_alive and not connection.closed:
                idle.append(connection)
            else:
                connection.close()
            return httpx.Response(status, headers=headers, content=content)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection of a KeepAliveTransport."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._parser_error = httptools.HttpParserError
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Answer] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self.closed = False
        self.reused = False  # it carried a request before the current one
        self.answered = False  # bytes of an answer to the current request came
        self.keep_alive = True

    @classmethod
    async def open(cls, address: tuple[str, int], timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(cls, *address), timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {address[0]}:{address[1]} timed out") from None
        except OSError as error:
            raise httpx.ConnectError(str(error)) from None
        return connection

    async def exchange(self, message: bytes, timeout: float | None) -> Answer:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.answered = False
        self._transport.write(message)
        try:
            return await asyncio.wait_for(self._answer, timeout)
        except asyncio.TimeoutError:
            self.close()
            raise httpx.ReadTimeout(f"no answer within {timeout} s") from None
        except asyncio.CancelledError:
            self.close()  # an answer may still come: the connection cannot carry another request
            raise
        finally:
            self.reused = True

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but is one.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self._parser.feed_data(data)
        except self._parser_error as error:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(httpx.ReadError("the server closed the connection"))

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    # httptools' callbacks

    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((self._parser.get_status_code(), self._headers, b"".join(self._body)))


def is_direct(url: str) -> bool:
    """Whether `url` is plain http:// that httpx would not send through a
    proxy (the *_PROXY variables): the lean connections' case."""
    if not url.startswith("http://"):
        return False
    host = urlsplit(url).hostname or ""
    proxies = urllib.request.getproxies()
    return not (proxies.get("http") or proxies.get("all")) or bool(urllib.request.proxy_bypass(host))


class BlockingConnections:
    """Kept-alive connections to one http://host:port for a blocking client:
    each exchange takes an idle connection or opens one, and gives it back
    (list pop and append are atomic, so threads sharing a client each get
    their own connection). Failures are httpx's exceptions, so the client's
    retry policy reads them as it reads httpx's."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._host = parts.netloc.encode("ascii")
        self._idle: list[_BlockingConnection] = []

    def exchange(
        self, method: str, path: str, headers: dict[str, str], content: bytes | None, timeout: float | None
    ) -> httpx.Response:
        head = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), path.encode(), self._host)]
        head.extend(
            b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        )
        head.append(b"content-length: %d\r\n\r\n" % len(content or b""))
        message = b"".join((*head, content or b""))
        while True:
            try:
                connection: _BlockingConnection | None = self._idle.pop()
            except IndexError:  # none idle (checking first would race another thread's pop)
                connection = None
            reused = connection is not None
            if connection is None:
                connection = _BlockingConnection(self._address, timeout)
            try:
                status, headers_out, body, keep_alive = connection.exchange(message, timeout)
            except _NotAnswered:
                connection.close()
                if reused:
                    continue  # the server had closed the idle connection: the request was not read
                raise httpx.ReadError("the server closed the connection without answering") from None
            except BaseException:
                connection.close()
                raise
            if keep_alive:
                self._idle.append(connection)
            else:
                connection.close()
            return httpx.Response(status, headers=headers_out, content=body)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class _NotAnswered(Exception):
    """Nothing of an answer came before the connection closed."""


class _BlockingConnection:
    __slots__ = ("_body", "_done", "_headers", "_keep_alive", "_parser", "_socket", "_timeout")

    def __init__(self, address: tuple[str, int], timeout: float | None) -> None:
        import httptools

        try:
            self._socket = socket.create_connection(address, timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {address[0]}:{address[1]} timed out") from None
        except OSError as error:
            raise httpx.ConnectError(str(error)) from None
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._timeout = timeout
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._done = False
        self._keep_alive = True

    def exchange(
        self, message: bytes, timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        import httptools

        if timeout != self._timeout:
            self._socket.settimeout(timeout)
            self._timeout = timeout
        self._headers, self._body, self._done = [], [], False
        received = False
        try:
            self._socket.sendall(message)
            while not self._done:
                data = self._socket.recv(1 << 18)
                if not data:
                    if not received:
                        raise _NotAnswered
                    raise httpx.ReadError("the server closed the connection mid-answer")
                received = True
                self._parser.feed_data(data)
        except (ConnectionResetError, BrokenPipeError):
            if not received:
                raise _NotAnswered from None
            raise httpx.ReadError("the connection was reset mid-answer") from None
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer within {timeout} s") from None
        except httptools.HttpParserError as error:
            raise httpx.RemoteProtocolError(f"malformed HTTP answer: {error}") from None
        except OSError as error:
            raise httpx.ReadError(str(error)) from None
        return self._parser.get_status_code(), self._headers, b"".join(self._body), self._keep_alive

    def close(self) -> None:
        self._socket.close()

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        # Read here: once the message is complete httptools resets the parser.
        self._keep_alive = self._parser.should_keep_alive()
        self._done = True
