"""`BodyLimits`: the request body bounds of every REST route, as one ASGI
middleware around the whole REST app.

- Size: a Content-Length over `max_request_body_size` is answered 413 before
  the body is read; a body without one (chunked) is counted as it arrives,
  and the request fails with 413 as soon as the count passes the limit.
- Time: each wait for a part of the body is bounded by `http_body_timeout`;
  past it the request fails with 408.

Both failures are raised from the `receive` the app reads the body through,
as `core.errors` exceptions, so the app's own error handling answers them;
when the app lets one escape, or returns without answering, this answers it.
The connection closes after such an answer: the rest of the body is unread.

On the hot path this costs a look at the headers and a counter per body part:
the body timeout is enforced by one timer for all the requests (`BodyReads`),
not by one per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import BadRequest, CoreError, PayloadTooLarge, RequestTimeout, shorten
from .responses import dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CLOSE = (b"connection", b"close")


class BodyReads:
    """The body reads waiting for their client, checked every `tick` seconds
    by one timer (armed only while reads wait): a read waiting for longer than
    `timeout` seconds is cancelled and raises `RequestTimeout`."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.tick = min(1.0, max(timeout / 4, 0.05))
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    async def read(self, receive: Receive) -> Message:
        task = asyncio.current_task()
        if task is None:  # not run by an asyncio task: nothing to cancel
            return await receive()
        self._waiting[task] = time.monotonic()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)
        try:
            return await receive()
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            uncancel = getattr(task, "uncancel", None)  # Python >= 3.11
            if uncancel is not None:
                uncancel()
            raise RequestTimeout(
                f"no part of the request body arrived for {self.timeout:g} s (http_body_timeout)"
            ) from None
        finally:
            self._waiting.pop(task, None)

    def _check(self) -> None:
        self._timer = None
        expiry = time.monotonic() - self.timeout
        for task, since in list(self._waiting.items()):
            if since <= expiry:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
        if self._waiting:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)


class BodyLimits:
    """The ASGI middleware: see the module's documentation."""

    def __init__(self, app: ASGIApp, max_body_size: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.reads = BodyReads(body_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_size
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await answer(
                        send,
                        BadRequest(
                            f"invalid Content-Length header: {shorten(repr(value.decode('latin-1')))}"
                        ),
                    )
                    return
                if int(value) > limit:
                    await answer(
                        send,
                        PayloadTooLarge(
                            f"request body of {int(value)} bytes exceeds the limit of {limit} bytes"
                            " (max_request_body_size)"
                        ),
                    )
                    return
                break

        received = 0
        complete = False
        failure: CoreError | None = None
        started = False
        reads = self.reads

        async def limited_receive() -> Message:
            nonlocal received, complete, failure
            if complete:  # the body is read: what follows is only the disconnect
                return await receive()
            try:
                message = await reads.read(receive)
            except RequestTimeout as error:
                failure = error
                raise
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    failure = PayloadTooLarge(
                        f"request body exceeds the limit of {limit} bytes (max_request_body_size)"
                    )
                    raise failure
                complete = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if not started:
                started = True
                if failure is not None:  # the rest of the body was not read
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except CoreError as error:
            if error is not failure or started:
                raise
            await answer(send, error)
            return
        if failure is not None and not started:
            await answer(send, failure)


async def answer(send: Send, error: CoreError) -> None:
    """`{"error": ...}` with the error's status, and the connection closed
    after it (the body, if any, is left unread)."""
    content = dumps({"error": error.message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        _CLOSE,
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": content})
