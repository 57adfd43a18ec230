"""ASGI middleware around the whole REST app (the infer fast path
included): MLServer's REST metrics (starlette-exporter's, with the route
template as `path`; when metrics are on), and the arrival and departure of
inference requests for the per-step latencies."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..rest.route_templates import PROBE_PATHS, RouteTemplates
from .families import APP_NAME, DefaultMetrics
from .steps import RequestSteps, StepRecorder, request_steps


class RestObserver:
    def __init__(
        self,
        app: ASGIApp,
        routes: RouteTemplates,
        metrics: DefaultMetrics | None,
        steps: StepRecorder,
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.steps = steps
        # Label children, made once: by method, and by (method, route, status).
        self._in_progress: dict[str, Any] = {}
        self._finished: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        in_progress = None
        if self.metrics is not None:
            in_progress = self._in_progress.get(method)
            if in_progress is None:
                in_progress = self._in_progress[method] = self.metrics.rest_in_progress.labels(
                    method, APP_NAME
                )
            in_progress.inc()
        status = 500  # unless the app answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        steps = RequestSteps(started)
        token = request_steps.set(steps)
        try:
            await self.app(scope, receive, send_status)
        finally:
            request_steps.reset(token)
            ended = time.perf_counter()
            if in_progress is not None:
                in_progress.dec()
                self._count(method, self.routes.template(scope), status, ended - started)
            if steps.model is not None:
                self.steps.finish(steps, ended)

    def _count(self, method: str, route: str, status: int, elapsed: float) -> None:
        key = (method, route, status)
        children = self._finished.get(key)
        if children is None:
            assert self.metrics is not None
            labels = (method, route, str(status), APP_NAME)
            children = self._finished[key] = (
                self.metrics.rest_requests.labels(*labels),
                self.metrics.rest_duration.labels(*labels),
            )
        counter, histogram = children
        counter.inc()
        histogram.observe(elapsed)
