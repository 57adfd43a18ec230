"""The two queue metrics: `batch_request_queue` (set by the adaptive
batcher, where the model runs) and `parallel_request_queue` (read from the
worker pools when the server is scraped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .store import current_store


def set_batch_request_queue(model_name: str, model_version: str | None, size: int) -> None:
    """Publish how many requests wait in the adaptive batching queue of one
    model version (`batch_request_queue{model_name, model_version}`).

    For the batcher: call it whenever its queue grows or shrinks, from the
    event loop of the process that holds the model (a worker, or the server
    process). Costs a dict lookup and a gauge update; does nothing useful
    but no harm when metrics are off. The replicas of a model in several
    workers add up."""
    store = current_store()
    key = ("batch_request_queue", model_name, model_version or "")
    record = store.recorders.get(key)
    if record is None:
        if store.defaults is None:
            return
        record = store.recorders[key] = store.defaults.batch_queue.labels(model_name, model_version or "").set
    record(size)


class ParallelQueueCollector(Collector):
    """`parallel_request_queue{pool, worker}`: the requests sent to each
    worker process and not answered yet, read at scrape time."""

    def __init__(self, queue_sizes: Callable[[], dict[str, dict[int, int]]]) -> None:
        self._queue_sizes = queue_sizes

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "parallel_request_queue",
            "Requests sent to a worker process and not answered yet.",
            labels=("pool", "worker"),
        )
        for pool, sizes in self._queue_sizes().items():
            for index, size in sorted(sizes.items()):
                family.add_metric((pool, str(index)), size)
        yield family
