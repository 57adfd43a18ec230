"""The metrics core records itself, with MLServer's names (and KServe's for
the per-step latencies), so dashboards carry over.

Hot paths never call `.labels(...)`: each model version, REST route and
gRPC method gets its label children once, and keeps them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MODEL_LABELS = ("model_name", "model_version")
# starlette-exporter's labels (MLServer's REST metrics come from it); `path`
# is the route template (`/v2/models/{name}/infer`), never the raw path.
REST_LABELS = ("method", "path", "status_code", "app_name")
# py-grpc-prometheus's labels (MLServer's gRPC metrics come from it).
GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")

APP_NAME = "core"


class DefaultMetrics:
    def __init__(self, registry: CollectorRegistry, rest_prefix: str) -> None:
        # Per model version, counted where the model runs.
        self.infer_success = Counter(
            "model_infer_request_success",
            "Successful inference requests.",
            MODEL_LABELS,
            registry=registry,
        )
        self.infer_failure = Counter(
            "model_infer_request_failure",
            "Failed inference requests (the model raised, or rejected the request).",
            MODEL_LABELS,
            registry=registry,
        )
        self.preprocess = Histogram(
            "request_preprocess_seconds",
            "Time from an inference request's arrival to the model call: reading, parsing and checking it.",
            MODEL_LABELS,
            registry=registry,
        )
        self.predict = Histogram(
            "request_predict_seconds", "Time in the model's predict.", MODEL_LABELS, registry=registry
        )
        self.postprocess = Histogram(
            "request_postprocess_seconds",
            "Time from the end of the model call to the response being written.",
            MODEL_LABELS,
            registry=registry,
        )
        self.explain = Histogram(
            "request_explain_seconds", "Time in the model's explain.", MODEL_LABELS, registry=registry
        )
        self.batch_queue = Gauge(
            "batch_request_queue",
            "Requests waiting in the adaptive batching queue of a model version (summed over replicas).",
            MODEL_LABELS,
            registry=registry,
            multiprocess_mode="livesum",
        )
        # REST, in the server process.
        self.rest_requests = Counter(
            f"{rest_prefix}_requests",
            "REST requests, by route and status code.",
            REST_LABELS,
            registry=registry,
        )
        self.rest_duration = Histogram(
            f"{rest_prefix}_requests_duration_seconds",
            "REST request latency, in seconds.",
            REST_LABELS,
            registry=registry,
        )
        self.rest_in_progress = Gauge(
            f"{rest_prefix}_requests_in_progress",
            "REST requests being served.",
            ("method", "app_name"),
            registry=registry,
            multiprocess_mode="livesum",
        )
        # gRPC, in the server process.
        self.grpc_started = Counter(
            "grpc_server_started", "RPCs started on the server.", GRPC_LABELS, registry=registry
        )
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status.",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.grpc_handling = Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC, in seconds.",
            GRPC_LABELS,
            registry=registry,
        )


class ModelMetrics:
    """The label children of one model version."""

    __slots__ = (
        "_explain",
        "defaults",
        "failure",
        "labels",
        "postprocess",
        "predict",
        "preprocess",
        "success",
    )

    def __init__(self, defaults: DefaultMetrics, name: str, version: str | None) -> None:
        self.defaults = defaults
        self.labels = (name, version or "")
        self.success = defaults.infer_success.labels(*self.labels)
        self.failure = defaults.infer_failure.labels(*self.labels)
        self.preprocess = defaults.preprocess.labels(*self.labels)
        self.predict = defaults.predict.labels(*self.labels)
        self.postprocess = defaults.postprocess.labels(*self.labels)
        # Most models never explain: no empty series for them.
        self._explain: Histogram | None = None

    @property
    def explain(self) -> Histogram:
        if self._explain is None:
            self._explain = self.defaults.explain.labels(*self.labels)
        return self._explain
