"""`WorkerPool`: N worker processes started with one Python interpreter,
kept running. A worker that exits is replaced at once, and the model
replicas it held are loaded into the new one before it takes traffic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import CoreError, ModelLoadError
from ..model import Model
from ..registry import build_local
from ..settings import ModelSettings, Settings
from . import protocol
from .environments import prepare_environment_async
from .process import WorkerProcess, WorkerUnavailable

if TYPE_CHECKING:
    from .model import WorkerModel

logger = logging.getLogger(__name__)

# A worker that dies within this many seconds of starting is restarted after
# a growing pause (up to the maximum), so a broken environment does not spin.
_QUICK_EXIT = 10.0
_MAX_BACKOFF = 30.0


class WorkerPool:
    def __init__(
        self,
        settings: Settings,
        size: int,
        python: str,
        name: str = "default",
        variables: dict[str, str] | None = None,
    ) -> None:
        self.size = size
        self.python = python
        self.name = name
        # The workers' process environment (None: this process's).
        self.variables = variables
        self._settings_json = settings.model_dump_json()
        self._heartbeat_timeout = settings.worker_heartbeat_timeout
        self.workers: list[WorkerProcess] = []
        # The proxies with a replica in the pool, to reload after a restart.
        self.models: set[WorkerModel] = set()
        # Models between `WorkerPools.pool_for` and the end of their load.
        self.loading = 0
        # Models placed on workers and loading there.
        self.placing: set[WorkerModel] = set()
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False
        # Notified whenever a worker is replaced (or could not be).
        self._replaced = asyncio.Condition()
        # Models whose load was cut short by their worker's exit load again
        # one at a time: the one whose load takes the replacement down too is
        # the cause, the others were only there.
        self.suspects = asyncio.Lock()

    async def start(self) -> None:
        self._stopping = False  # started again after a failed start
        self.workers = [self._new_worker(i) for i in range(self.size)]
        await asyncio.gather(*(worker.start() for worker in self.workers))
        self._supervisors = [asyncio.create_task(self._supervise(i)) for i in range(self.size)]
        logger.info("%s worker pool: %d workers (%s)", self.name, self.size, self.python)

    def _new_worker(self, index: int) -> WorkerProcess:
        return WorkerProcess(
            index, self.python, self._settings_json, self.variables, heartbeat_timeout=self._heartbeat_timeout
        )

    async def replacement(self, worker: WorkerProcess) -> WorkerProcess:
        """The worker that replaced `worker` (which exited), once one is ready
        (the first replacement may have exited too); WorkerUnavailable if the
        pool stops. Bounded by the caller's deadline (a load's)."""

        def replaced() -> bool:
            current = self.workers[worker.index]
            return self._stopping or (current is not worker and current.ready)

        async with self._replaced:
            await self._replaced.wait_for(replaced)
        current = self.workers[worker.index]
        if self._stopping:
            raise WorkerUnavailable(f"worker {worker.index} is not replaced: the pool is stopping")
        return current

    async def _announce_replacement(self) -> None:
        async with self._replaced:
            self._replaced.notify_all()

    def place(self, model: WorkerModel, limit: int | None = None) -> list[WorkerProcess]:
        """The workers for a new model's replicas (all when its `replicas` is
        None, at most `limit`, its runtime's): those that hold the fewest
        replicas already, counting those of models loading meanwhile, so
        memory spreads evenly."""
        replicas = model.settings.replicas
        count = self.size if replicas is None else min(replicas, self.size)
        if limit is not None and limit < count:
            logger.info("model '%s': %d replica(s), the most its runtime allows", model.name, limit)
            count = limit
        held = {worker.index: 0 for worker in self.workers}
        for other in self.models | self.placing:
            for index in other.worker_indexes:
                held[index] = held.get(index, 0) + 1
        ranked = sorted(self.workers, key=lambda worker: (held[worker.index], worker.index))[:count]
        model.worker_indexes.update(worker.index for worker in ranked)
        return ranked

    def queue_sizes(self) -> dict[int, int]:
        """Requests sent to each worker and not yet answered (MLServer's
        `parallel_request_queue`)."""
        return {worker.index: worker.in_flight for worker in self.workers}

    async def _supervise(self, index: int) -> None:
        backoff = 1.0
        while not self._stopping:
            worker = self.workers[index]
            started = time.monotonic()
            await worker.exited.wait()
            if self._stopping:
                return
            if time.monotonic() - started < _QUICK_EXIT:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = 1.0
            replacement = self._new_worker(index)
            self.workers[index] = replacement
            try:
                await replacement.start()
            except Exception as error:
                logger.error("could not replace worker %d: %s", index, error)
                continue
            finally:
                await self._announce_replacement()
            await self._reload(replacement, [m for m in self.models if index in m.worker_indexes])

    async def _reload(self, worker: WorkerProcess, models: Iterable[WorkerModel]) -> None:
        for model in models:
            try:
                await model.load_replica(worker, retry=False)
            except Exception as error:
                logger.error(
                    "model '%s' could not be reloaded into %s: %s", model.name, worker.describe(), error
                )

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        await self._announce_replacement()
        for task in self._supervisors:
            task.cancel()
        for task in self._supervisors:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(worker.stop(timeout) for worker in self.workers))


class WorkerPools:
    """The server's worker pools: the default one (`parallel_workers`
    workers, this interpreter), started when the first model that runs in
    it loads (a server that serves only `Model` instances given in code
    starts none), and one per custom environment (`max(1, parallel_workers)`
    workers running the environment's Python), started the same way and
    stopped when its last model unloads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.default = WorkerPool(settings, settings.parallel_workers, sys.executable)
        self._environments: dict[str, WorkerPool] = {}
        self._starting = asyncio.Lock()

    def hosts(self, settings: ModelSettings) -> bool:
        """Whether a model from the repository runs in a worker."""
        parameters = settings.parameters
        custom = bool(parameters.environment_tarball or parameters.environment_path)
        return custom or self.settings.parallel_workers > 0

    def build(self, settings: ModelSettings) -> Model:
        """The instance the registry loads for `settings`: a proxy to workers,
        or the runtime itself in this process."""
        if self.hosts(settings):
            from .model import WorkerModel

            return WorkerModel(settings, self)
        return build_local(settings)

    async def pool_for(self, settings: ModelSettings) -> WorkerPool:
        """The pool a model runs in: its environment's (prepared, and its
        pool started, on first use), else the default one. The caller loads
        the model, then calls `release`."""
        environment = await prepare_environment_async(settings, self.settings.environments_dir)
        async with self._starting:
            if environment is None:
                pool = self.default
                if not pool.workers:
                    await _start(pool)
            else:
                found = self._environments.get(environment.key)
                if found is None:
                    found = WorkerPool(
                        self.settings,
                        max(1, self.settings.parallel_workers),
                        str(environment.python),
                        name=f"environment {environment.root}",
                        variables=environment.variables(os.environ),
                    )
                    await _start(found)
                    self._environments[environment.key] = found
                pool = found
            pool.loading += 1
        return pool

    async def release(self, pool: WorkerPool) -> None:
        """Stop an environment's pool once no model is in it or loading into
        it: its workers hold memory for nothing. A model that needs the
        environment later starts a new pool."""
        if pool is self.default:
            return
        async with self._starting:
            keys = [key for key, running in self._environments.items() if running is pool]
            if pool.models or pool.loading or not keys:  # in use, or stopped already
                return
            del self._environments[keys[0]]
        logger.info("%s worker pool: no models left, stopping it", pool.name)
        await pool.stop()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker; those still running after `timeout` seconds are killed."""
        await asyncio.gather(*(pool.stop(timeout) for pool in self.pools()))

    def kill(self) -> None:
        """SIGKILL every worker now (the server is about to exit at once)."""
        for pool in self.pools():
            for worker in pool.workers:
                worker.kill()

    def pools(self) -> list[WorkerPool]:
        return [self.default, *self._environments.values()]

    async def flush_metrics(self, timeout: float = 2.0) -> None:
        """Have every worker copy the core metrics it counted into its
        metric files, before a scrape reads them. A worker that does not
        answer in time is scraped as it is."""
        calls = [
            worker.call(protocol.FLUSH_METRICS)
            for pool in self.pools()
            for worker in pool.workers
            if worker.ready
        ]
        if calls:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout)

    def queue_sizes(self) -> dict[str, dict[int, int]]:
        """Per pool, the requests each worker has not answered yet."""
        return {pool.name: pool.queue_sizes() for pool in self.pools()}


async def _start(pool: WorkerPool) -> None:
    try:
        await pool.start()
    except CoreError as error:
        await pool.stop()
        pool.workers = []  # the next model to load tries again
        raise ModelLoadError(f"the workers of the {pool.name} pool did not start: {error.message}") from None
