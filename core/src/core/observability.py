"""What a process installs to observe itself, decided once from the
settings when it starts: metrics, step latencies (and their log lines),
traces. What is off is not installed, so it costs requests nothing.

- metrics (`metrics_endpoint` set) and step latencies (metrics, or
  `enable_latency_logging`): a dataplane that counts and times model calls,
  a REST middleware, a gRPC interceptor; in the server process, the
  metrics endpoint; with workers, each worker counts the calls it serves.
- traces (`tracing_enabled`, or OTEL_TRACES_EXPORTER): a dataplane that
  makes a span per model call, a REST middleware and a gRPC interceptor
  that make the server spans."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from fastapi import FastAPI
from starlette.types import ASGIApp

from .dataplane import DataPlane
from .errors import ConfigurationError
from .settings import Settings

if TYPE_CHECKING:
    from .metrics.server import MetricsServer
    from .metrics.steps import StepRecorder
    from .metrics.store import MetricsStore
    from .registry import ModelRegistry
    from .tracing import Tracing
    from .workers.pool import WorkerPools

T = TypeVar("T")

TRACES_EXPORTER_ENV = "OTEL_TRACES_EXPORTER"


def tracing_wanted(settings: Settings) -> bool:
    """`tracing_enabled`, or (when unset) whether OTEL_TRACES_EXPORTER names an exporter."""
    if settings.tracing_enabled is not None:
        return settings.tracing_enabled
    return os.environ.get(TRACES_EXPORTER_ENV, "none").strip().lower() not in ("", "none")


class Observability:
    def __init__(self, settings: Settings, worker: bool = False) -> None:
        self.settings = settings
        self.metrics_enabled = settings.metrics_endpoint is not None
        self.store: MetricsStore | None = None
        self.steps: StepRecorder | None = None
        self.tracing: Tracing | None = None
        if self.metrics_enabled or settings.enable_latency_logging:
            from .metrics import store
            from .metrics.steps import StepRecorder

            self.store = store.configure(settings, owner=not worker)
            assert self.store.defaults is not None
            self.steps = StepRecorder(self.store.defaults, settings.enable_latency_logging)
        if tracing_wanted(settings):
            try:
                from .tracing import configure_tracing
            except ImportError as error:
                raise ConfigurationError(
                    f"tracing needs OpenTelemetry: pip install 'core[tracing]' ({error})"
                ) from None
            self.tracing = configure_tracing(settings)

    # Installed pieces

    def dataplane(self, registry: ModelRegistry) -> DataPlane:
        bases: list[type[DataPlane]] = []
        attributes: dict[str, Any] = {}
        if self.tracing is not None:
            from .tracing import TracedDataPlane

            bases.append(TracedDataPlane)
            attributes["tracer"] = self.tracing.tracer
        if self.steps is not None:
            from .metrics.steps import MeasuredDataPlane

            bases.append(MeasuredDataPlane)
            attributes["steps"] = self.steps
        if not bases:
            return DataPlane(self.settings, registry)
        # Spans outermost: a model call's span covers its measurement.
        observed: type[DataPlane] = type("ObservedDataPlane", tuple(bases), attributes)
        return observed(self.settings, registry)

    def rest_app(self, app: ASGIApp, fastapi_app: FastAPI) -> ASGIApp:
        """`app` (the whole REST app, the infer fast path included) with the
        middleware that observe it."""
        if self.steps is None and self.tracing is None:
            return app
        from .rest.route_templates import RouteTemplates

        templates = RouteTemplates(fastapi_app)
        if self.steps is not None:
            from .metrics.rest import RestObserver

            defaults = self.store.defaults if self.store is not None and self.metrics_enabled else None
            app = RestObserver(app, templates, defaults, self.steps)
        if self.tracing is not None:
            from .tracing import TracingMiddleware

            app = TracingMiddleware(app, self.tracing.tracer, templates)
        return app

    def grpc_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if self.tracing is not None:
            from .tracing import GrpcTracing

            interceptors.append(GrpcTracing(self.tracing.tracer))
        if self.steps is not None:
            from .metrics.grpc import GrpcObserver

            defaults = self.store.defaults if self.store is not None and self.metrics_enabled else None
            interceptors.append(GrpcObserver(defaults, self.steps))
        return interceptors

    def request_entry(self) -> Callable[[Awaitable[T]], Awaitable[T]] | None:
        """For a worker: what to await an inference request's whole handling
        through (its arrival and departure), or None."""
        return self.steps.measure if self.steps is not None else None

    def metrics_server(self, pools: WorkerPools) -> MetricsServer | None:
        """The server process's metrics endpoint (None when metrics are off)."""
        if not self.metrics_enabled or self.store is None:
            return None
        from .metrics.queues import ParallelQueueCollector
        from .metrics.server import MetricsServer

        self.store.expose([ParallelQueueCollector(pools.queue_sizes)])
        return MetricsServer(self.store, self.settings, pools.flush_metrics)

    def worker_exited(self, pid: int) -> None:
        """A worker process is gone: fold its metric files."""
        if self.store is not None:
            self.store.process_exited(pid)

    def shutdown(self) -> None:
        """Flush the spans not exported yet."""
        if self.tracing is not None:
            with contextlib.suppress(Exception):
                self.tracing.shutdown()
