"""OpenTelemetry traces (install `core[tracing]`).

Spans: one per REST request and gRPC call (kind SERVER, a child of the
caller's span when the request carries W3C `traceparent`), and beneath it
one per model call (`predict`, `explain`, `predict_stream`), in the
process that runs the model: the server process, or the worker the server
hands the request to with the request's headers, where the server's span
has replaced the caller's `traceparent`. A runtime's own spans
(`opentelemetry.trace.get_tracer(...)`) nest under the model call's.

Off by default; on with `tracing_enabled`, or when OTEL_TRACES_EXPORTER
names an exporter. The exporter and its endpoint come from the standard
OTEL_* variables (OTEL_TRACES_EXPORTER: otlp (default), console, none, or
any installed exporter's entry point; OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_PROTOCOL: grpc (default) or http/protobuf;
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, ...). An
application that set an SDK TracerProvider before starting `core.Server`
keeps it.

When off, none of this is imported, and nothing is installed: no
middleware, no interceptor, the plain DataPlane; requests pay nothing."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .dataplane import DataPlane
from .errors import ConfigurationError
from .grpc.interception import CallObserver, ObservingInterceptor, split_method
from .model import Model
from .observability import TRACES_EXPORTER_ENV as EXPORTER_ENV
from .remote import RemoteModel
from .rest.route_templates import PROBE_PATHS, RouteTemplates
from .types import InferenceRequest, InferenceResponse

if TYPE_CHECKING:
    from .settings import Settings

_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
# gRPC codes that are the server's failure, not the caller's (OTel semantic conventions).
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class Tracing:
    def __init__(self, tracer: trace.Tracer, provider: TracerProvider | None) -> None:
        self.tracer = tracer
        # The provider core made (None: the application's own), flushed at shutdown.
        self._provider = provider

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def configure_tracing(settings: Settings) -> Tracing:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):  # the application set one up
        return Tracing(provider.get_tracer("core"), None)
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: settings.server_name}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters_from_environment():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    # Global, so that a runtime's own spans are exported alongside.
    trace.set_tracer_provider(provider)
    return Tracing(provider.get_tracer("core"), provider)


def exporters_from_environment() -> list[SpanExporter]:
    names = [name.strip().lower() for name in os.environ.get(EXPORTER_ENV, "otlp").split(",")]
    found = []
    for name in names:
        if name in ("", "none"):
            continue
        if name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            )
            name = "otlp_proto_http" if protocol.strip().lower().startswith("http") else "otlp_proto_grpc"
        matches = entry_points(group=_EXPORTER_GROUP, name=name)
        if not matches:
            raise ConfigurationError(
                f"{EXPORTER_ENV}: no span exporter '{name}' is installed (pip install 'core[tracing]')"
            )
        found.append(next(iter(matches)).load()())
    return found


def _parent(carrier: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The caller's span context, when the carrier has one (else the current context)."""
    if carrier and "traceparent" in carrier:
        return propagate.extract(carrier)
    return None


def _with_current_trace(pairs: list[tuple[Any, Any]], encode: Callable[[str], Any]) -> list[tuple[Any, Any]]:
    """Header pairs with the current span's traceparent (and tracestate) in
    place of the caller's: what the worker and the model get."""
    outgoing: dict[str, str] = {}
    propagate.inject(outgoing)
    kept = [(key, value) for key, value in pairs if _name(key) not in _TRACE_HEADERS]
    return kept + [(encode(key), encode(value)) for key, value in outgoing.items()]


def _name(key: Any) -> str:
    return key.decode("latin-1").lower() if isinstance(key, bytes) else str(key).lower()


# REST


class TracingMiddleware:
    def __init__(self, app: ASGIApp, tracer: trace.Tracer, routes: RouteTemplates) -> None:
        self.app = app
        self.tracer = tracer
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]}
        with self.tracer.start_as_current_span(
            method, context=_parent(carrier), kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            encode: Callable[[str], bytes] = lambda text: text.encode("latin-1")  # noqa: E731
            scope = {**scope, "headers": _with_current_trace(list(scope["headers"]), encode)}
            status = 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                route = self.routes.template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


# gRPC


class GrpcTracing(ObservingInterceptor):
    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def observer(self, method: str, handler: grpc.RpcMethodHandler) -> CallObserver | None:
        return _SpanObserver(self.tracer, method)


class _SpanObserver:
    def __init__(self, tracer: trace.Tracer, method: str) -> None:
        self.tracer = tracer
        self.name = method.lstrip("/")
        service, name = split_method(method)
        self.attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def begin(self, context: Any) -> tuple[Any, Any]:
        metadata = list(context.invocation_metadata() or ())
        carrier = {key: value for key, value in metadata if isinstance(value, str)}
        span = self.tracer.start_span(
            self.name, context=_parent(carrier), kind=SpanKind.SERVER, attributes=self.attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return (span, token), _TracedServicerContext(context, tuple(_with_current_trace(metadata, str)))

    def end(self, state: Any, code: grpc.StatusCode) -> None:
        span, token = state
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()
        otel_context.detach(token)


class _TracedServicerContext:
    """The servicer's context, with this server's span in the invocation
    metadata (the servicer hands the metadata on, as headers, to the model
    and to worker processes)."""

    def __init__(self, context: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._context = context
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


# Model calls


class TracedDataPlane(DataPlane):
    """A span around every model call, in the process that runs the model."""

    # Set on the class a server builds (see core.observability).
    tracer: trace.Tracer

    async def _call(
        self,
        model: Model,
        method: Callable[[InferenceRequest], Awaitable[InferenceResponse]],
        payload: InferenceRequest,
        headers: Mapping[str, str] | None,
    ) -> InferenceResponse:
        if isinstance(model, RemoteModel):  # the replica makes the span
            return await super()._call(model, method, payload, headers)
        with self.tracer.start_as_current_span(
            method.__name__, context=_parent(_carrier(payload, headers)), attributes=_model_attributes(model)
        ) as span:
            response = await super()._call(model, method, payload, headers)
            span.set_attribute("inference.request.id", str(payload.id))
            return response

    async def infer_stream(
        self,
        payload: InferenceRequest,
        name: str,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[InferenceResponse]:
        model = self.registry.get(name, version)
        responses = super().infer_stream(payload, name, version, headers)
        if isinstance(model, RemoteModel):
            async for response in responses:
                yield response
            return
        with self.tracer.start_as_current_span(
            "predict_stream", context=_parent(_carrier(payload, headers)), attributes=_model_attributes(model)
        ):
            async for response in responses:
                yield response


def _carrier(payload: InferenceRequest, headers: Mapping[str, str] | None) -> Mapping[str, Any] | None:
    """The request's headers: given by the transport, or (calls relayed to a
    worker) the ones the server process put in the request's parameters."""
    if headers:
        return headers
    parameters = payload.parameters
    return parameters.headers if parameters is not None else None


def _model_attributes(model: Model) -> dict[str, str]:
    attributes = {"model.name": model.name}
    if model.version is not None:
        attributes["model.version"] = model.version
    return attributes
