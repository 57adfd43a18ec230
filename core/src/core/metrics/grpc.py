"""gRPC server interceptor: py-grpc-prometheus's server metrics
(`grpc_server_started`, `grpc_server_handled`, `grpc_server_handling_seconds`;
MLServer's gRPC metrics come from it), and the arrival and departure of
ModelInfer requests for the per-step latencies."""

from __future__ import annotations

import time
from typing import Any

import grpc

from ..grpc.interception import CallObserver, ObservingInterceptor, rpc_type, split_method
from .families import DefaultMetrics
from .steps import RequestSteps, StepRecorder, request_steps

# The RPC whose requests reach a model with their arrival time known.
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


class GrpcObserver(ObservingInterceptor):
    def __init__(self, metrics: DefaultMetrics | None, steps: StepRecorder) -> None:
        super().__init__()
        self.metrics = metrics
        self.steps = steps

    def observer(self, method: str, handler: grpc.RpcMethodHandler) -> CallObserver | None:
        entry = method == INFER_METHOD
        if self.metrics is None and not entry:
            return None
        return _MethodObserver(
            self.metrics, rpc_type(handler), *split_method(method), self.steps if entry else None
        )


class _MethodObserver:
    def __init__(
        self,
        metrics: DefaultMetrics | None,
        grpc_type: str,
        service: str,
        method: str,
        steps: StepRecorder | None,
    ) -> None:
        self.metrics = metrics
        self.labels = (grpc_type, service, method)
        self.steps = steps
        self.started = self.handling = None
        if metrics is not None:
            self.started = metrics.grpc_started.labels(*self.labels)
            self.handling = metrics.grpc_handling.labels(*self.labels)
        self._handled: dict[grpc.StatusCode, Any] = {}

    def begin(self, context: Any) -> tuple[Any, Any]:
        if self.started is not None:
            self.started.inc()
        steps = token = None
        arrived = time.perf_counter()
        if self.steps is not None:
            steps = RequestSteps(arrived)
            token = request_steps.set(steps)
        return (arrived, steps, token), context

    def end(self, state: Any, code: grpc.StatusCode) -> None:
        arrived, steps, token = state
        ended = time.perf_counter()
        if token is not None:
            request_steps.reset(token)
        if self.metrics is not None:
            handled = self._handled.get(code)
            if handled is None:
                handled = self._handled[code] = self.metrics.grpc_handled.labels(*self.labels, code.name)
            handled.inc()
            self.handling.observe(ended - arrived)  # type: ignore[union-attr]
        if steps is not None and steps.model is not None:
            self.steps.finish(steps, ended)  # type: ignore[union-attr]
