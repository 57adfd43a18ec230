"""Metrics of a runtime's own: `core.register` and `core.log`.

    import core

    class MyRuntime(core.Model):
        async def load(self) -> bool:
            core.register("tokens", "Tokens generated.", kind="counter")
            ...

        async def predict(self, payload):
            ...
            core.log(tokens=len(tokens), batch_rows=rows)  # batch_rows: a histogram

A metric registered with labels of its own takes them in `core.record`:

    core.register("feature_p_value", "p-value per feature.", kind="gauge", labels=["feature"])
    core.record("feature_p_value", 0.03, feature="age")

Every value is labelled with the model it was logged for (`model_name`,
`model_version`, from the model call running), and reaches the metrics
endpoint from the server process and from worker processes alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    labels: Sequence[str] = (),
) -> CustomMetric:
    """Register a metric, labelled `model_name` and `model_version`, and
    return it; registering a name again returns the metric already there.

    `kind`: "histogram" (the default, as MLServer's: `log` observes the
    value), "counter" (`log` adds the value) or "gauge" (`log` sets it).
    `buckets`: a histogram's upper bounds. `multiprocess_mode`: how a gauge
    set in several worker processes adds up (sum by default). `labels`:
    label names of its own, after the model's; its values are then recorded
    with `record`, not `log`."""
    store = current_store()
    existing = store.custom.get(name)
    if existing is not None:
        if _kind(existing) != kind:
            raise ValueError(f"metric '{name}' is already registered as a {_kind(existing)}, not a {kind}")
        if _own_labels(existing) != tuple(labels):
            raise ValueError(
                f"metric '{name}' is already registered with labels {list(_own_labels(existing))}"
            )
        return existing
    registry = store.registry
    names = (*MODEL_LABELS, *labels)
    metric: CustomMetric
    if kind == "histogram":
        bounds = tuple(buckets) if buckets is not None else Histogram.DEFAULT_BUCKETS
        metric = Histogram(name, description, names, registry=registry, buckets=bounds)
    elif kind == "counter":
        metric = Counter(name, description, names, registry=registry)
    elif kind == "gauge":
        metric = Gauge(name, description, names, registry=registry, multiprocess_mode=multiprocess_mode)
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
            own = _own_labels(metric)
            if own:
                raise ValueError(
                    f"metric '{name}' has labels {list(own)}: record its values with core.record"
                )
            record = _recorder(metric, name_label, version_label)
            store.recorders[key] = record
        record(value)


def record(name: str, value: float, **labels: str) -> None:
    """Record a value of `name`, a metric registered with labels of its own,
    for the model whose call is running: `record("p_value", 0.2, feature="age")`."""
    metric = current_store().custom.get(name)
    if metric is None:
        raise ValueError(f"metric '{name}' is not registered: core.register it with its labels first")
    own = _own_labels(metric)
    if set(labels) != set(own):
        raise ValueError(f"metric '{name}' takes the labels {list(own)}, not {sorted(labels)}")
    name_label, version_label = model_labels()
    _recorder(metric, name_label, version_label, *(str(labels[label]) for label in own))(value)


def _recorder(metric: CustomMetric, *label_values: str) -> Callable[[float], None]:
    child = metric.labels(*label_values)
    if isinstance(child, Histogram):
        return child.observe
    if isinstance(child, Counter):
        return child.inc
    return child.set


def _own_labels(metric: CustomMetric) -> tuple[str, ...]:
    return tuple(metric._labelnames[len(MODEL_LABELS) :])


def _kind(metric: CustomMetric) -> MetricKind:
    if isinstance(metric, Histogram):
        return "histogram"
    return "counter" if isinstance(metric, Counter) else "gauge"
