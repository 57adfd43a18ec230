"""`Server`: composes the registry, data plane and transports, and runs them
until a signal asks it to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

import uvicorn

from . import ports
from .grpc.server import GRPCServer
from .model import Model
from .observability import Observability
from .process import configure_process
from .registry import ModelRegistry
from .rest.app import create_app
from .rest.fast_infer import FastInferApp
from .rest.http_protocol import http_protocol
from .settings import Settings
from .workers.pool import WorkerPools
from .workers.process import exit_listeners

logger = logging.getLogger(__name__)

# The least time the shutdown gives unloading the models, and the workers to exit.
_LEAST_SHUTDOWN_STEP = 2.0


class _HTTPServer(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM as soon as HTTP has stopped, which
    killed the process before `Server.start` unloaded the models. Catch the
    signals without re-raising them, so the shutdown finishes. The first
    signal starts the shutdown of every transport at once (`on_first_signal`);
    a second one ends the process at once (`on_second_signal`)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.on_first_signal: Callable[[], None] = lambda: None
        self.on_second_signal: Callable[[int], None] = lambda sig: None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.on_second_signal(sig)
            return
        self.should_exit = True
        self.on_first_signal()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class Server:
    """Serve the models of `settings.model_repository_root` and any `Model`
    instances given to `start`:

        Server(Settings(http_port=8080)).run([MyModel(ModelSettings(name="m"))])
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        configure_process(self.settings)
        # Before the workers start: they inherit the metrics folder's location.
        self.observability = Observability(self.settings)
        self.workers = WorkerPools(self.settings)
        self.registry = ModelRegistry(self.workers.build, self.settings)
        self.dataplane = self.observability.dataplane(self.registry)
        self.app = create_app(self.settings, self.dataplane)
        self._http: _HTTPServer | None = None
        self._grpc: GRPCServer | None = None
        self._grpc_stopped: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping_since = 0.0

    async def start(self, models: Sequence[Model] = ()) -> None:
        """Serve until SIGINT/SIGTERM. The HTTP and gRPC ports open at once (so
        liveness answers while models load); readiness follows the models. On
        a signal both transports stop taking calls at once and finish the
        running ones within `graceful_shutdown_timeout`; then the models
        unload and the workers stop, each within a bound. A second signal
        ends the process at once."""
        settings = self.settings
        self._loop = asyncio.get_running_loop()
        http_connections, grpc_connections = ports.connection_limits(settings)
        rest_app = FastInferApp(self.app, self.dataplane, settings.max_request_body_size)
        config = uvicorn.Config(
            self.observability.rest_app(rest_app, self.app),
            http=http_protocol(settings, http_connections),
            log_level=settings.log_level.lower(),
            access_log=settings.access_log,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=math.ceil(settings.graceful_shutdown_timeout),
        )
        self._http = _HTTPServer(config)
        self._http.on_first_signal = self.stop
        self._http.on_second_signal = self._exit_now
        self._grpc = GRPCServer(
            settings, self.dataplane, self.observability.grpc_interceptors(), grpc_connections
        )
        http_socket = ports.bind(settings.host, settings.http_port, "HTTP port")
        metrics = self.observability.metrics_server(self.workers)
        try:
            if metrics is not None:
                await metrics.start()
            await self._grpc.start()
        except BaseException:
            http_socket.close()
            if metrics is not None:
                await metrics.stop()
            raise
        serving = asyncio.create_task(self._http.serve(sockets=[http_socket]))
        logger.info("REST server listening on http://%s:%d", settings.host, settings.http_port)
        exit_listeners.append(self.observability.worker_exited)
        # Loads run beside serving: a shutdown does not wait for a load.
        loading = asyncio.create_task(self._load(models))
        try:
            await serving
        finally:
            self._begin_shutdown()
            if not serving.done():
                await serving
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await self._finish_shutdown()
            exit_listeners.remove(self.observability.worker_exited)
            if metrics is not None:
                await metrics.stop()
            self.observability.shutdown()

    def run(self, models: Sequence[Model] = ()) -> None:
        """`start` on uvloop when it is installed (it is, with uvicorn[standard])."""
        try:
            import uvloop
        except ImportError:
            asyncio.run(self.start(models))
        else:
            uvloop.run(self.start(models))

    def stop(self) -> None:
        """Shut down as on SIGTERM. Safe from any thread, and from a signal
        handler: the shutdown itself runs on the server's loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._begin_shutdown)

    def _begin_shutdown(self) -> None:
        """Both transports stop taking new work now, and get
        `graceful_shutdown_timeout` to finish what is in flight (uvicorn's
        `timeout_graceful_shutdown`; gRPC's grace). Readiness turns false."""
        if self.dataplane.stopping:
            return
        self.dataplane.stopping = True
        self._stopping_since = time.monotonic()
        timeout = self.settings.graceful_shutdown_timeout
        logger.info("shutting down: no new requests; finishing those in flight (up to %g s)", timeout)
        if self._http is not None:
            self._http.should_exit = True
            for listener in getattr(self._http, "servers", ()):
                listener.close()
        if self._grpc is not None:
            self._grpc_stopped = asyncio.ensure_future(self._grpc.stop(timeout))

    async def _finish_shutdown(self) -> None:
        """Once the transports have drained: unload the models and stop the
        workers, each within what is left of the shutdown timeout (2 s at
        least), a hung worker killed."""
        if self._grpc_stopped is not None:
            await self._grpc_stopped
        try:
            await asyncio.wait_for(self.registry.unload_all(), self._shutdown_time_left())
        except asyncio.TimeoutError:
            logger.error("models did not unload in time: stopping their workers anyway")
        await self.workers.stop(self._shutdown_time_left())

    def _shutdown_time_left(self) -> float:
        elapsed = time.monotonic() - self._stopping_since
        return max(self.settings.graceful_shutdown_timeout - elapsed, _LEAST_SHUTDOWN_STEP)

    def _exit_now(self, sig: int) -> None:
        """A second SIGTERM/SIGINT: kill the workers and end the process now."""
        logger.warning("second %s: exiting now", signal.Signals(sig).name)
        self.workers.kill()
        os._exit(128 + sig)

    async def _load(self, models: Sequence[Model]) -> None:
        try:
            if self.settings.load_models_at_startup:
                await self.dataplane.load_repository()
            for model in models:
                await self.dataplane.add_model(model)
        except Exception:
            logger.exception("loading the models failed")
        self.dataplane.started = True
