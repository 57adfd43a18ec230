"""Metrics of a runtime's own: `core.register` and `core.log`.

    import core

    class MyRuntime(core.Model):
        async def load(self) -> bool:
            core.register("tokens", "Tokens generated.", kind="counter")
            ...

        async def predict(self, payload):
            ...
            core.log(tokens=len(tokens), batch_rows=rows)  # batch_rows: a histogram

Every value is labelled with the model it was logged for (`model_name`,
`model_version`, from the model call running), and reaches the metrics
endpoint from the server process and from worker processes alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

from ..model_context import model_labels
from .families import MODEL_LABELS
from .store import CustomMetric, current_store

MetricKind = Literal["histogram", "counter", "gauge"]

# Gauge values of several processes (the replicas of a model in several
# workers): prometheus_client's multiprocess modes.
GaugeMode = Literal["livesum", "livemax", "livemin", "livemostrecent", "liveall"]


def register(
    name: str,
    description: str,
    kind: MetricKind = "histogram",
    *,
    buckets: Sequence[float] | None = None,
    multiprocess_mode: GaugeMode = "livesum",
) -> CustomMetric:
    """Register a metric, labelled `model_name` and `model_version`, and
    return it; registering a name again returns the metric already there.

    `kind`: "histogram" (the default, as MLServer's: `log` observes the
    value), "counter" (`log` adds the value) or "gauge" (`log` sets it).
    `buckets`: a histogram's upper bounds. `multiprocess_mode`: how a gauge
    set in several worker processes adds up (sum by default)."""
    store = current_store()
    existing = store.custom.get(name)
    if existing is not None:
        if _kind(existing) != kind:
            raise ValueError(f"metric '{name}' is already registered as a {_kind(existing)}, not a {kind}")
        return existing
    registry = store.registry
    metric: CustomMetric
    if kind == "histogram":
        bounds = tuple(buckets) if buckets is not None else Histogram.DEFAULT_BUCKETS
        metric = Histogram(name, description, MODEL_LABELS, registry=registry, buckets=bounds)
    elif kind == "counter":
        metric = Counter(name, description, MODEL_LABELS, registry=registry)
    elif kind == "gauge":
        metric = Gauge(
            name, description, MODEL_LABELS, registry=registry, multiprocess_mode=multiprocess_mode
        )
    else:
        raise ValueError(f"metric kind must be histogram, counter or gauge, not {kind!r}")
    store.custom[name] = metric
    return metric


def log(**metrics: float) -> None:
    """Record values for the model whose call is running: `log(latency=0.2)`.
    A name not registered yet is registered as a histogram."""
    store = current_store()
    name_label, version_label = model_labels()
    for name, value in metrics.items():
        key = (name, name_label, version_label)
        record = store.recorders.get(key)
        if record is None:
            metric = store.custom.get(name) or register(name, f"Custom metric {name}.")
            child = metric.labels(name_label, version_label)
            if isinstance(child, Histogram):
                record = child.observe
            elif isinstance(child, Counter):
                record = child.inc
            else:
                record = child.set
            store.recorders[key] = record
        record(value)


def _kind(metric: CustomMetric) -> MetricKind:
    if isinstance(metric, Histogram):
        return "histogram"
    return "counter" if isinstance(metric, Counter) else "gauge"
