"""KeepAliveTransport: a lean HTTP/1.1 transport for httpx over plain TCP."""

from __future__ import annotations

import asyncio

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
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

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
