"""Where this process's metric values live, and the text a scrape returns.

- Core's own metrics: plain numbers on the event loop (see `local`), in
  every process.
- Runtimes' custom metrics without workers: prometheus_client's in-memory
  values.
- With worker processes, everything the workers record, and custom metrics
  in the server process: prometheus_client's multiprocess mode. Each
  process writes its values to files of its own in `metrics_dir`; a scrape
  adds them up (MultiProcessCollector) and merges the server's own numbers
  in. A worker's core metrics reach its files through `flush`, which copies
  what changed: when the server process scrapes, and every second (a
  killed worker loses at most its last second's counts). Workers inherit
  PROMETHEUS_MULTIPROC_DIR from the server process's environment. When a
  worker exits, its counters and histograms are folded into one archive
  file per type, so the totals never go down (Prometheus would read a drop
  as a counter reset), and every file it wrote is removed.

One store per process: metrics are process-wide, as prometheus_client's are.
The first `configure` decides the mode; metric objects created before it
(none are, in core) would keep the mode of their creation."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from .local import LocalGauge, LocalHistogram

if TYPE_CHECKING:
    from ..settings import Settings
    from .families import DefaultMetrics

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The types whose values add up across processes: a dead process's values of
# these are kept (folded into the archive); its gauges go.
_ADDITIVE = ("counter", "histogram", "summary")

CustomMetric = Histogram | Counter | Gauge


class MetricsStore:
    def __init__(self, directory: Path | None) -> None:
        # None: in-memory values (no worker processes, or metrics off).
        self.directory = directory
        # Every metric of this process registers here: names are checked for
        # clashes, and in-memory values are scraped from it.
        self.registry = CollectorRegistry()
        # Set by `configure`: the families core records (REST, gRPC, models).
        self.defaults: DefaultMetrics | None = None
        # In a worker: the same families in the multiprocess files, and the
        # values `flush` last copied there, by (family index, labels).
        self.mirror: DefaultMetrics | None = None
        self._flushed: dict[tuple[int, tuple[str, ...]], Any] = {}
        # The metrics runtimes registered (`core.register`), by name.
        self.custom: dict[str, CustomMetric] = {}
        # (metric, model name, model version) -> how to record a value there:
        # a label child's observe, inc or set, looked up once.
        self.recorders: dict[tuple[str, str, str], Callable[[float], None]] = {}
        # This process's own collectors (process_*, python_*, the worker
        # queues), once exposed; with workers, the files of every process.
        self._extra: list[Collector] | None = None
        self._files: MultiProcessCollector | None = None
        # A scrape (in a thread) and folding a dead worker's files must not interleave.
        self._lock = threading.Lock()

    @property
    def multiprocess(self) -> bool:
        return self.directory is not None

    def expose(self, extra: Iterable[Collector] = ()) -> None:
        """Make this store scrapable: its metrics, plus this process's own
        collectors (process_*, python_gc_*, python_info) and `extra`
        (computed at scrape time in this process). Once."""
        if self._extra is not None:
            return
        self._extra = [PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, *extra]
        if self.multiprocess:
            self._files = MultiProcessCollector(None, path=str(self.directory))
        else:
            for collector in self._extra:
                self.registry.register(collector)

    def local_families(self) -> list[Metric]:
        """With workers, the server process's own core metrics (plain numbers,
        see `local`): read them on the event loop that updates them, and hand
        them to `render`."""
        if self.defaults is None:
            return []
        return [metric for family in self.defaults.local_families for metric in family.collect()]

    def flush(self) -> None:
        """In a worker: copy what core's metrics counted since the last flush
        into the multiprocess files (on the event loop that updates them)."""
        if self.mirror is None or self.defaults is None:
            return
        pairs = zip(self.defaults.families, self.mirror.families, strict=True)
        for index, (source, target) in enumerate(pairs):
            for labels, child in source.children.items():
                key = (index, labels)
                if isinstance(child, LocalHistogram):
                    counts, total = self._flushed.get(key, ([0] * len(child.counts), 0.0))
                    if child.sum == total and child.counts == counts:
                        continue
                    mirrored = target.labels(*labels)
                    # prometheus_client keeps a histogram as one value per
                    # bucket (not cumulative) and a sum: add the new counts.
                    for bucket, now, before in zip(mirrored._buckets, child.counts, counts, strict=True):
                        if now != before:
                            bucket.inc(now - before)
                    mirrored._sum.inc(child.sum - total)
                    self._flushed[key] = (list(child.counts), child.sum)
                else:
                    before = self._flushed.get(key, 0.0)
                    if child.value == before:
                        continue
                    mirrored = target.labels(*labels)
                    if isinstance(child, LocalGauge):
                        mirrored.set(child.value)
                    else:
                        mirrored.inc(child.value - before)
                    self._flushed[key] = child.value

    def render(self, accept: str | None = None, local: Iterable[Metric] = ()) -> tuple[bytes, str]:
        """The scrape's body and content type (OpenMetrics when asked for).
        With workers: every process's files, merged with `local`."""
        if self._extra is None:
            raise RuntimeError("the metrics store is not exposed")
        encoder, content_type = choose_encoder(accept or "")
        if self._files is None:
            return encoder(self.registry), content_type
        with self._lock:
            families = _merge([*self._files.collect(), *local])
        scraped = CollectorRegistry()
        scraped.register(_Collected(families))
        for collector in self._extra:
            scraped.register(collector)
        return encoder(scraped), content_type

    def process_exited(self, pid: int) -> None:
        """A worker process is gone: keep what its counters and histograms
        counted, drop its gauges, remove its files."""
        if self.directory is None:
            return
        with self._lock:
            mark_process_dead(pid, str(self.directory))
            for path in self.directory.glob(f"*_{pid}.db"):
                kind = path.name.split("_", 1)[0]
                if kind in _ADDITIVE:
                    self._fold(kind, path)
                path.unlink(missing_ok=True)

    def _fold(self, kind: str, path: Path) -> None:
        # `{kind}_archive.db`: MultiProcessCollector takes the type from the
        # name's first part and reads the file as any other process's.
        assert self.directory is not None
        archive = MmapedDict(str(self.directory / f"{kind}_archive.db"))
        try:
            for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
                total, _ = archive.read_value(key)
                archive.write_value(key, total + value, 0.0)
        finally:
            archive.close()


class _Collected(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _merge(families: Iterable[Metric]) -> list[Metric]:
    """One family per name: the same family may come from the files and from
    the server process's own numbers (a model served in the server process
    next to models in workers)."""
    merged: dict[str, Metric] = {}
    for family in families:
        known = merged.get(family.name)
        if known is None:
            merged[family.name] = family
        else:
            known.samples.extend(family.samples)
    return list(merged.values())


_store: MetricsStore | None = None


def current_store() -> MetricsStore:
    """This process's store; an in-memory one if nothing configured it (a
    runtime used outside a server, in its own tests)."""
    global _store
    if _store is None:
        _store = MetricsStore(None)
    return _store


def configure(settings: Settings, owner: bool) -> MetricsStore:
    """Set this process's metrics up from the server's settings. `owner`:
    the server process, which prepares `metrics_dir` and hands it to its
    workers through the environment; a worker (not the owner) finds it there."""
    global _store
    from .families import DefaultMetrics

    if _store is not None and _store.defaults is not None:
        return _store  # a second Server in one process shares the first one's metrics
    directory: Path | None = None
    if settings.metrics_endpoint is not None and settings.parallel_workers > 0:
        if owner:
            directory = _prepare_directory(settings.metrics_dir)
            os.environ[MULTIPROC_DIR_ENV] = str(directory)
        elif os.environ.get(MULTIPROC_DIR_ENV):
            directory = Path(os.environ[MULTIPROC_DIR_ENV])
    values.ValueClass = values.MultiProcessValue() if directory is not None else values.MutexValue
    # `_created` series: in-memory only, never in multiprocess mode; the same
    # series in both modes.
    disable_created_metrics()
    if _store is None or _store.directory != directory:
        if _store is not None:
            logger.warning("metrics registered before the server was set up are not exported")
        _store = MetricsStore(directory)
    # Core's own metrics are plain numbers in every process. The server
    # process reads its own directly, workers or not; a worker's reach the
    # files through `flush`.
    prefix = settings.metrics_rest_server_prefix
    if owner or directory is None:
        _store.defaults = DefaultMetrics(_store.registry, prefix, local=True)
    else:
        _store.defaults = DefaultMetrics(CollectorRegistry(), prefix, local=True)
        _store.mirror = DefaultMetrics(_store.registry, prefix)
    return _store


def _prepare_directory(configured: str | None) -> Path:
    """`metrics_dir` emptied of metric files (only those: it may be a folder
    that holds other things), or a new temporary folder, removed at exit."""
    if configured is None:
        directory = Path(tempfile.mkdtemp(prefix="core-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        return directory
    directory = Path(configured).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory
