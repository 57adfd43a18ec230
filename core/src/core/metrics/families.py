"""The metrics core records itself, with MLServer's names (and KServe's for
the per-step latencies), so dashboards carry over.

Hot paths never call `.labels(...)`: each model version, REST route and
gRPC method gets its label children once, and keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .local import Kind, LocalFamily

MODEL_LABELS = ("model_name", "model_version")
# starlette-exporter's labels (MLServer's REST metrics come from it); `path`
# is the route template (`/v2/models/{name}/infer`), never the raw path.
REST_LABELS = ("method", "path", "status_code", "app_name")
# py-grpc-prometheus's labels (MLServer's gRPC metrics come from it).
GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")

APP_NAME = "core"


class DefaultMetrics:
    """`local`: plain numbers for one process's event loop (see `local`);
    otherwise prometheus_client's metrics (their values in multiprocess
    files, with worker processes)."""

    def __init__(self, registry: CollectorRegistry, rest_prefix: str, local: bool = False) -> None:
        self._registry = registry
        self._local = local
        # Every family, in the same order whatever `local` is.
        self.families: list[Any] = []
        # Per model version, counted where the model runs.
        self.infer_success = self._family(
            "counter",
            "model_infer_request_success",
            "Successful inference requests.",
            MODEL_LABELS,
        )
        self.infer_failure = self._family(
            "counter",
            "model_infer_request_failure",
            "Failed inference requests (the model raised, or rejected the request).",
            MODEL_LABELS,
        )
        self.preprocess = self._family(
            "histogram",
            "request_preprocess_seconds",
            "Time from an inference request's arrival to the model call: reading, parsing and "
            "checking it, and the model's preprocess hook.",
            MODEL_LABELS,
        )
        self.predict = self._family(
            "histogram", "request_predict_seconds", "Time in the model's predict.", MODEL_LABELS
        )
        self.postprocess = self._family(
            "histogram",
            "request_postprocess_seconds",
            "Time from the end of the model call to the response being written, "
            "with the model's postprocess hook.",
            MODEL_LABELS,
        )
        self.explain = self._family(
            "histogram", "request_explain_seconds", "Time in the model's explain.", MODEL_LABELS
        )
        self.batch_queue = self._family(
            "gauge",
            "batch_request_queue",
            "Requests waiting in the adaptive batching queue of a model version (summed over replicas).",
            MODEL_LABELS,
        )
        # Model storage, in the process that fetches (the server's registry).
        self.storage_bytes = self._family(
            "counter",
            "storage_download_bytes",
            "Bytes downloaded for remote model URIs, by URI scheme.",
            ("scheme",),
        )
        self.storage_seconds = self._family(
            "histogram",
            "storage_download_seconds",
            "Time to download a remote model URI (cache misses), by URI scheme.",
            ("scheme",),
        )
        self.storage_cache_hits = self._family(
            "counter",
            "storage_cache_hits",
            "Remote model URIs served from the download cache, unchanged, by URI scheme.",
            ("scheme",),
        )
        # REST, in the server process.
        self.rest_requests = self._family(
            "counter",
            f"{rest_prefix}_requests",
            "REST requests, by route and status code.",
            REST_LABELS,
        )
        self.rest_duration = self._family(
            "histogram",
            f"{rest_prefix}_requests_duration_seconds",
            "REST request latency, in seconds.",
            REST_LABELS,
        )
        self.rest_in_progress = self._family(
            "gauge",
            f"{rest_prefix}_requests_in_progress",
            "REST requests being served.",
            ("method", "app_name"),
        )
        # gRPC, in the server process.
        self.grpc_started = self._family(
            "counter", "grpc_server_started", "RPCs started on the server.", GRPC_LABELS
        )
        self.grpc_handled = self._family(
            "counter",
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status.",
            (*GRPC_LABELS, "grpc_code"),
        )
        self.grpc_handling = self._family(
            "histogram",
            "grpc_server_handling_seconds",
            "Time to handle an RPC, in seconds.",
            GRPC_LABELS,
        )

    @property
    def local_families(self) -> list[LocalFamily]:
        return self.families if self._local else []

    def _family(self, kind: Kind, name: str, documentation: str, labelnames: Sequence[str]) -> Any:
        """A family with `labels(...)`, whose children have inc/dec/set or observe."""
        family: Any
        if self._local:
            family = LocalFamily(name, documentation, labelnames, kind)
            self._registry.register(family)
        elif kind == "counter":
            family = Counter(name, documentation, labelnames, registry=self._registry)
        elif kind == "histogram":
            family = Histogram(name, documentation, labelnames, registry=self._registry)
        else:  # gauges: what the live processes hold, added up
            family = Gauge(
                name, documentation, labelnames, registry=self._registry, multiprocess_mode="livesum"
            )
        self.families.append(family)
        return family


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
        self._explain: Any = None

    @property
    def explain(self) -> Any:
        if self._explain is None:
            self._explain = self.defaults.explain.labels(*self.labels)
        return self._explain
