"""Per model call: success and failure counts, and the time of each step of
an inference request (`request_preprocess_seconds`,
`request_predict_seconds`, `request_postprocess_seconds`,
`request_explain_seconds`), optionally logged (`enable_latency_logging`).

Measured in the process that holds the model. The model call itself is
timed by `MeasuredDataPlane`; the request's arrival and the response's
departure by the entry that hands the request to the dataplane (the REST
middleware and gRPC interceptor in the server process, the worker's call
handler in a worker), through a `RequestSteps` in a context variable:

    preprocess   arrival .. model call (reading, parsing, checking the
                 request, and the model's `preprocess` hook)
    predict      the model call
    postprocess  end of the model call .. response ready (the model's
                 `postprocess` hook, encoding the response)

Requests that arrive another way (V1, generate, streaming) get the model
call's counts and time only; and, for a model with hooks, the time of its
hooks as their preprocess and postprocess steps."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

from ..dataplane import DataPlane
from ..model import Model
from ..model_hooks import HookTimes
from ..remote import RemoteModel
from ..types import InferenceRequest, InferenceResponse
from .families import DefaultMetrics, ModelMetrics

T = TypeVar("T")

latency_logger = logging.getLogger("core.latency")


class RequestSteps:
    """The step boundaries of one inference request, perf_counter seconds."""

    __slots__ = ("arrived", "model", "predict_ended", "predict_started")

    def __init__(self, arrived: float) -> None:
        self.arrived = arrived
        # Set by the dataplane once the model has answered.
        self.model: ModelMetrics | None = None
        self.predict_started = self.predict_ended = 0.0


request_steps: contextvars.ContextVar[RequestSteps | None] = contextvars.ContextVar(
    "core_request_steps", default=None
)


class StepRecorder:
    def __init__(self, defaults: DefaultMetrics, log_latency: bool) -> None:
        self.defaults = defaults
        self.log_latency = log_latency
        self._models: dict[tuple[str, str | None], ModelMetrics] = {}

    def model_metrics(self, model: Model) -> ModelMetrics | None:
        """The label children of `model`; None for a proxy to remote
        replicas (the replica that serves the call counts it)."""
        if isinstance(model, RemoteModel):
            return None
        key = (model.name, model.version)
        metrics = self._models.get(key)
        if metrics is None:
            metrics = self._models[key] = ModelMetrics(self.defaults, *key)
        return metrics

    async def measure(self, call: Awaitable[T]) -> T:
        """Await `call`, the whole handling of one inference request."""
        steps = RequestSteps(time.perf_counter())
        token = request_steps.set(steps)
        try:
            return await call
        finally:
            request_steps.reset(token)
            if steps.model is not None:
                self.finish(steps, time.perf_counter())

    def finish(self, steps: RequestSteps, ended: float) -> None:
        """Record the steps of a request answered at `ended`."""
        metrics = steps.model
        assert metrics is not None
        preprocess = steps.predict_started - steps.arrived
        postprocess = ended - steps.predict_ended
        metrics.preprocess.observe(preprocess)
        metrics.postprocess.observe(postprocess)
        if self.log_latency:
            log_latency(metrics, steps.predict_ended - steps.predict_started, preprocess, postprocess)


def log_latency(
    metrics: ModelMetrics, predict: float, preprocess: float | None = None, postprocess: float | None = None
) -> None:
    name, version = metrics.labels
    steps = {"predict_ms": round(predict * 1000, 3)}
    if preprocess is not None and postprocess is not None:
        steps = {
            "preprocess_ms": round(preprocess * 1000, 3),
            **steps,
            "postprocess_ms": round(postprocess * 1000, 3),
            "total_ms": round((preprocess + predict + postprocess) * 1000, 3),
        }
    text = ", ".join(f"{step[:-3]} {value:.3f} ms" for step, value in steps.items())
    latency_logger.info(
        "model %s version %s: %s",
        name,
        version or "-",
        text,
        extra={"model_name": name, "model_version": version, **steps},
    )


class MeasuredDataPlane(DataPlane):
    """Counts and times every model call."""

    # Set on the class a server builds (see core.observability).
    steps: StepRecorder

    async def _call(
        self,
        model: Model,
        method: Callable[[InferenceRequest], Awaitable[InferenceResponse]],
        payload: InferenceRequest,
        headers: Mapping[str, str] | None,
    ) -> InferenceResponse:
        metrics = self.steps.model_metrics(model)
        if metrics is None:
            return await super()._call(model, method, payload, headers)
        started = time.perf_counter()
        try:
            response = await super()._call(model, method, payload, headers)
        except Exception:
            metrics.failure.inc()
            raise
        ended = time.perf_counter()
        metrics.success.inc()
        if model.runs_preprocess or model.runs_postprocess:
            return response  # its steps are timed one by one: `_hooks_timed`
        if method.__name__ == "explain":
            metrics.explain.observe(ended - started)
            return response
        metrics.predict.observe(ended - started)
        steps = request_steps.get()
        if steps is not None:
            steps.model, steps.predict_started, steps.predict_ended = metrics, started, ended
        elif self.steps.log_latency:
            log_latency(metrics, ended - started)
        return response

    async def infer_stream(
        self,
        payload: InferenceRequest,
        name: str,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[InferenceResponse]:
        model = self.registry.get(name, version)
        metrics = self.steps.model_metrics(model)
        responses = super().infer_stream(payload, name, version, headers)
        if metrics is None:
            async for response in responses:
                yield response
            return
        started = time.perf_counter()
        try:
            async for response in responses:
                yield response
        except Exception:
            metrics.failure.inc()
            raise
        elapsed = time.perf_counter() - started
        metrics.success.inc()
        if model.runs_preprocess or model.runs_postprocess:
            return  # its steps are timed one by one: `_hooks_timed`
        metrics.predict.observe(elapsed)
        if self.steps.log_latency:
            log_latency(metrics, elapsed)

    def _hooks_timed(self, model: Model, verb: str, times: HookTimes) -> None:
        metrics = self.steps.model_metrics(model)
        if metrics is None:
            return
        (metrics.explain if verb == "explain" else metrics.predict).observe(times.predict)
        steps = request_steps.get() if verb == "predict" else None
        if steps is not None:
            # The request's own steps, from its arrival to its departure,
            # take in the hooks' time.
            steps.model, steps.predict_started, steps.predict_ended = (
                metrics,
                times.predict_started,
                times.predict_ended,
            )
            return
        metrics.preprocess.observe(times.preprocess)
        metrics.postprocess.observe(times.postprocess)
        if self.steps.log_latency:
            log_latency(metrics, times.predict, times.preprocess, times.postprocess)
