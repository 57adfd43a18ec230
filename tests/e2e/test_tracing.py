"""OpenTelemetry spans: a server span per REST request and gRPC call, the
child of the caller's W3C `traceparent`, and a `predict` span beneath it.

- In process: `core.Server` started from Python in a thread of this test
  process, which set up an SDK TracerProvider with the SDK's
  InMemorySpanExporter (the server uses an application's provider).
- With two workers: `core start` configured by the standard OTEL_*
  variables, exporting OTLP over HTTP to a receiver in this test; the
  `predict` spans come from the worker processes."""

from __future__ import annotations

import gzip
import json
import random
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import core
from core.testing import ServerProcess, free_port
from core.types import InferenceRequest, InferenceResponse, ResponseOutput

from .conftest import wait_for

REST_SPAN = "POST /v2/models/{name}/infer"
GRPC_SPAN = "inference.GRPCInferenceService/ModelInfer"

ECHO_MODELS_PY = textwrap.dedent(
    '''
    from core import Model
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput


    class TraceEcho(Model):
        """Answers the traceparent header it was given."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            headers = payload.parameters.headers if payload.parameters else None
            seen = (headers or {}).get("traceparent", "")
            output = ResponseOutput(name="traceparent", shape=[1], datatype="BYTES", data=[seen])
            return InferenceResponse(model_name=self.name, outputs=[output])
    '''
)


class TraceEcho(core.Model):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        headers = payload.parameters.headers if payload.parameters else None
        seen = (headers or {}).get("traceparent", "")
        output = ResponseOutput(name="traceparent", shape=[1], datatype="BYTES", data=[seen])
        return InferenceResponse(model_name=self.name, outputs=[output])


@dataclass
class Span:
    """What the tests look at, from the SDK's spans and from OTLP's alike."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    attributes: dict[str, Any]


@dataclass
class Caller:
    trace_id: int
    span_id: int

    @classmethod
    def new(cls) -> Caller:
        return cls(random.getrandbits(128), random.getrandbits(64))

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-01"


def rest_infer(url: str, model: str, headers: dict[str, str]) -> str:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}
    response = httpx.post(f"{url}/v2/models/{model}/infer", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["outputs"][0]["data"][0])


def grpc_infer(port: int, model: str, headers: dict[str, str]) -> str:
    tensor = triton_grpc.InferInput("x", [1], "INT32")
    tensor.set_data_from_numpy(np.array([1], dtype=np.int32))
    result = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}").infer(model, [tensor], headers=headers)
    return str(result.as_numpy("traceparent")[0].decode())


def spans_of_trace(spans: list[Span], trace_id: int, names: set[str]) -> dict[str, Span] | None:
    found = {span.name: span for span in spans if span.trace_id == trace_id}
    return found if names <= found.keys() else None


def check_trace(spans: list[Span], caller: Caller, server_span: str, echoed: str) -> dict[str, Span]:
    found = spans_of_trace(spans, caller.trace_id, {server_span, "predict"})
    assert found is not None
    server, predict = found[server_span], found["predict"]
    assert server.parent_id == caller.span_id
    assert predict.parent_id == server.span_id
    assert predict.attributes["model.name"] == "trace-echo"
    assert predict.attributes["model.version"] == "3"
    # The model (and a worker) got the server span as the parent, not the caller's.
    assert echoed == f"00-{caller.trace_id:032x}-{server.span_id:016x}-01"
    return found


def traced_infer(transport: str, url: str, grpc_port: int, caller: Caller) -> tuple[str, str]:
    """Infer with the caller's traceparent: the server span's name, and the
    traceparent the model saw."""
    headers = {"traceparent": caller.traceparent}
    if transport == "rest":
        return REST_SPAN, rest_infer(url, "trace-echo", headers)
    return GRPC_SPAN, grpc_infer(grpc_port, "trace-echo", headers)


SERVER_ATTRIBUTES = {
    "rest": {"http.route": "/v2/models/{name}/infer", "http.response.status_code": 200},
    "grpc": {"rpc.system": "grpc", "rpc.grpc.status_code": 0},
}


# In process, with the SDK's in-memory exporter


@dataclass
class InProcess:
    url: str
    grpc_port: int
    exporter: InMemorySpanExporter

    def spans(self) -> list[Span]:
        return [
            Span(
                span.name,
                span.context.trace_id,
                span.context.span_id,
                span.parent.span_id if span.parent is not None else None,
                dict(span.attributes or {}),
            )
            for span in self.exporter.get_finished_spans()
        ]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the application's provider: the server uses it
    http_port, grpc_port = free_port(), free_port()
    settings = core.Settings(
        host="127.0.0.1",
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=free_port(),
        model_repository_root=str(tmp_path_factory.mktemp("no-models")),
        tracing_enabled=True,
    )
    server = core.Server(settings)
    model = TraceEcho(core.ModelSettings(name="trace-echo", parameters=core.ModelParameters(version="3")))
    thread = threading.Thread(target=server.run, args=([model],), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{http_port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready)
    yield InProcess(url, grpc_port, exporter)
    server.stop()
    thread.join(30)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_server_span_continues_the_callers_trace(in_process: InProcess, transport: str) -> None:
    caller = Caller.new()
    server_span, echoed = traced_infer(transport, in_process.url, in_process.grpc_port, caller)
    wait_for(lambda: spans_of_trace(in_process.spans(), caller.trace_id, {server_span, "predict"}))
    found = check_trace(in_process.spans(), caller, server_span, echoed)
    assert SERVER_ATTRIBUTES[transport].items() <= found[server_span].attributes.items()


def test_a_request_without_traceparent_starts_a_trace(in_process: InProcess) -> None:
    before = {span.trace_id for span in in_process.spans()}
    echoed = rest_infer(in_process.url, "trace-echo", {})
    trace_id = int(echoed.split("-")[1], 16)
    assert trace_id not in before
    found = wait_for(lambda: spans_of_trace(in_process.spans(), trace_id, {REST_SPAN, "predict"}))
    assert found[REST_SPAN].parent_id is None
    assert found["predict"].parent_id == found[REST_SPAN].span_id


# With two workers, exported over OTLP/HTTP


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.spans: list[Span] = []
        self.services: set[str] = set()
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource_spans in request.resource_spans:
                for attribute in resource_spans.resource.attributes:
                    if attribute.key == "service.name":
                        self.server.services.add(attribute.value.string_value)
                for scope_spans in resource_spans.scope_spans:
                    self.server.spans.extend(_span(span) for span in scope_spans.spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _span(span: Any) -> Span:
    attributes = {}
    for attribute in span.attributes:
        value = attribute.value
        attributes[attribute.key] = getattr(value, value.WhichOneof("value") or "string_value")
    parent = int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else None
    trace_id, span_id = int.from_bytes(span.trace_id, "big"), int.from_bytes(span.span_id, "big")
    return Span(span.name, trace_id, span_id, parent, attributes)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("traced-models")
    (root / "trace-echo").mkdir()
    (root / "trace-echo" / "models.py").write_text(ECHO_MODELS_PY)
    settings = {"name": "trace-echo", "implementation": "models.TraceEcho", "parameters": {"version": "3"}}
    (root / "trace-echo" / "model-settings.json").write_text(json.dumps(settings))
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "core-e2e",
    }
    with ServerProcess(root, "--parallel-workers", "2", env=env) as process:
        yield process


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_spans_through_workers(worker_server: ServerProcess, receiver: Receiver, transport: str) -> None:
    caller = Caller.new()
    server_span, echoed = traced_infer(transport, worker_server.url, worker_server.grpc_port, caller)
    wait_for(lambda: spans_of_trace(list(receiver.spans), caller.trace_id, {server_span, "predict"}))
    check_trace(list(receiver.spans), caller, server_span, echoed)
    assert receiver.services == {"core-e2e"}


def test_nothing_is_installed_when_tracing_and_metrics_are_off() -> None:
    from core.dataplane import DataPlane
    from core.observability import Observability

    observability = Observability(core.Settings(metrics_endpoint=None))
    assert observability.tracing is None
    assert observability.grpc_interceptors() == []
    app = object()
    assert observability.rest_app(app, None) is app  # type: ignore[arg-type]
    assert type(observability.dataplane(None)) is DataPlane  # type: ignore[arg-type]
