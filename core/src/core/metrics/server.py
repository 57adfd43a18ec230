"""The metrics endpoint: `GET {metrics_endpoint}` on `metrics_port`, its
own uvicorn server in the server process's event loop, apart from the
inference port so scrapes never queue behind inference (and the port can
stay private)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.types import Receive, Scope, Send

from ..executor import run_in_thread
from ..ports import bind
from ..settings import Settings
from .store import MetricsStore

logger = logging.getLogger(__name__)


class MetricsApp:
    def __init__(
        self, store: MetricsStore, endpoint: str, before_scrape: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.store = store
        self.endpoint = endpoint
        # Brings the worker processes' files up to date (see MetricsStore.flush).
        self.before_scrape = before_scrape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != self.endpoint or scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 404, b'{"error": "not found"}', "application/json")
            return
        accept = next((value.decode("latin-1") for key, value in scope["headers"] if key == b"accept"), None)
        if self.store.multiprocess:
            if self.before_scrape is not None:
                await self.before_scrape()
            # This process's own numbers are read here, between two updates;
            # every process's files in a thread.
            local = self.store.local_families()
            body, content_type = await run_in_thread(self.store.render, accept, local)
        else:  # in-memory values, updated on this event loop: read between two updates
            body, content_type = self.store.render(accept)
        await _respond(send, 200, b"" if scope["method"] == "HEAD" else body, content_type)


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """Leaves signals to the inference server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsServer:
    def __init__(
        self,
        store: MetricsStore,
        settings: Settings,
        before_scrape: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        assert settings.metrics_endpoint is not None
        self.host, self.port, self.endpoint = settings.host, settings.metrics_port, settings.metrics_endpoint
        config = uvicorn.Config(
            MetricsApp(store, self.endpoint, before_scrape),
            log_level=settings.log_level.lower(),
            # uvicorn's access logger is one for every server in the process,
            # and a Config without an access log takes its handlers away: as
            # the inference server's (scrapes are logged when requests are).
            access_log=settings.access_log,
            log_config=None,
            lifespan="off",
        )
        self._server = _Server(config)
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve; raises PortUnavailable when the port cannot be bound."""
        sock = bind(self.host, self.port, "metrics port")
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        logger.info("metrics on http://%s:%d%s", self.host, self.port, self.endpoint)

    async def stop(self) -> None:
        if self._serving is not None:
            self._server.should_exit = True
            await self._serving
            self._serving = None
