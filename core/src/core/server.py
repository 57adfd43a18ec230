"""`Server`: composes the registry, data plane and transports, and runs them
until a signal asks it to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Sequence

import uvicorn

from . import executor, ports
from .grpc.server import GRPCServer
from .model import Model
from .observability import Observability
from .registry import ModelRegistry
from .rest.app import create_app
from .rest.fast_infer import FastInferApp
from .settings import Settings
from .workers.pool import WorkerPools
from .workers.process import exit_listeners

logger = logging.getLogger(__name__)


class _HTTPServer(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM as soon as HTTP has stopped, which
    killed the process before `Server.start` unloaded the models. Catch the
    signals without re-raising them, so the shutdown finishes."""

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
        executor.configure(inline_budget=self.settings.inline_predict_budget)
        # Before the workers start: they inherit the metrics folder's location.
        self.observability = Observability(self.settings)
        self.workers = WorkerPools(self.settings)
        self.registry = ModelRegistry(self.workers.build)
        self.dataplane = self.observability.dataplane(self.registry)
        self.app = create_app(self.settings, self.dataplane)
        self._http: uvicorn.Server | None = None
        self._grpc: GRPCServer | None = None

    async def start(self, models: Sequence[Model] = ()) -> None:
        """Serve until SIGINT/SIGTERM. The HTTP and gRPC ports open at once (so
        liveness answers while models load); readiness follows the models. On
        a signal both stop taking calls, finish the running ones, then the
        models unload."""
        settings = self.settings
        rest_app = FastInferApp(self.app, self.dataplane, settings.max_request_body_size)
        config = uvicorn.Config(
            self.observability.rest_app(rest_app, self.app),
            log_level=settings.log_level.lower(),
            access_log=settings.access_log,
            log_config=None,
            lifespan="off",
        )
        self._http = _HTTPServer(config)
        self._grpc = GRPCServer(settings, self.dataplane, self.observability.grpc_interceptors())
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
        try:
            await self._load(models)
            await serving
        finally:
            if not serving.done():
                self._http.should_exit = True
                await serving
            await self._grpc.stop()
            await self.registry.unload_all()
            await self.workers.stop()
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
        if self._http is not None:
            self._http.should_exit = True

    async def _load(self, models: Sequence[Model]) -> None:
        if self.settings.load_models_at_startup:
            await self.dataplane.load_repository()
        for model in models:
            await self.dataplane.add_model(model)
        self.dataplane.started = True
