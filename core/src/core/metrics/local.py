"""Core's own metrics in the process that exposes them (the server
process, workers or not): plain Python numbers, updated from the event loop
only, turned into Prometheus families when scraped (read on the event loop
too).

A prometheus_client update takes a lock and a few calls (about 0.5 to
1 us); a request updates a dozen values, which cost 5 % of a one-row
inference. These cost an attribute increment each. Runtimes' own metrics
(`core.log`, which may run in threads) stay prometheus_client's, as do
core's in worker processes, whose values must reach the server process
through prometheus_client's multiprocess files."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Literal

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Kind = Literal["counter", "gauge", "histogram"]


class LocalCounter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LocalGauge(LocalCounter):
    __slots__ = ()

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class LocalHistogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds  # upper bounds, +Inf last
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.sum += amount
        self.counts[bisect_left(self.bounds, amount)] += 1


LocalChild = LocalCounter | LocalGauge | LocalHistogram


class LocalFamily(Collector):
    """A metric family with labels, as a prometheus_client metric: `labels(...)`
    gives the child to update (keep it; looking it up costs more than the update)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], kind: Kind) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.kind = kind
        self.bounds = (*Histogram.DEFAULT_BUCKETS[:-1], float("inf"))
        self.children: dict[tuple[str, ...], LocalChild] = {}

    def labels(self, *values: str) -> LocalChild:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            if self.kind == "histogram":
                child = LocalHistogram(self.bounds)
            else:
                child = LocalGauge() if self.kind == "gauge" else LocalCounter()
            self.children[values] = child
        return child

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in list(self.children.items()):
            if isinstance(child, LocalHistogram):
                assert isinstance(family, HistogramMetricFamily)
                cumulative, buckets = 0, []
                for bound, count in zip(child.bounds, child.counts, strict=True):
                    cumulative += count
                    buckets.append((floatToGoString(bound), float(cumulative)))
                family.add_metric(list(values), buckets, child.sum)
            else:
                assert not isinstance(family, HistogramMetricFamily)
                family.add_metric(list(values), child.value)
        yield family

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily:
        labels = list(self.labelnames)
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.documentation, labels=labels)
        if self.kind == "gauge":
            return GaugeMetricFamily(self.name, self.documentation, labels=labels)
        return HistogramMetricFamily(self.name, self.documentation, labels=labels)
