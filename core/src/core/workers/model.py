"""`WorkerModel`: what the server's registry holds for a model that lives in
worker processes. Each call goes to the least-busy worker holding a ready
replica; inference requests travel as the bytes the client sent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ..deadlines import Deadline, call_deadline, model_timeout
from ..errors import CoreError, ModelLoadError, ModelNotReady
from ..remote import RemoteModel
from ..settings import ModelSettings
from ..statistics import InferenceStatistics
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse
from . import protocol
from .process import WorkerProcess, WorkerUnavailable

if TYPE_CHECKING:
    from .pool import WorkerPool, WorkerPools

logger = logging.getLogger(__name__)


class WorkerModel(RemoteModel):
    def __init__(self, settings: ModelSettings, pools: WorkerPools) -> None:
        super().__init__(settings)
        self._pools = pools
        self.pool: WorkerPool | None = None  # chosen at load: the model's environment's, or the default
        # Identifies this instance in the workers: a reload loads a new one
        # next to it, and the old one serves until the new one is ready.
        self.uid = uuid.uuid4().hex
        # Worker index -> the worker process in which the replica is loaded.
        self._replicas: dict[int, WorkerProcess] = {}
        self._placed: set[int] = set()
        # Seconds each call to a replica may take (0: no limit).
        self._timeout = model_timeout(settings, pools.settings)

    @property
    def ready(self) -> bool:
        return self._ready and any(worker.ready for worker in self._replicas.values())

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value

    @property
    def worker_indexes(self) -> set[int]:
        return self._placed

    def _pick(self) -> WorkerProcess:
        best: WorkerProcess | None = None
        for worker in self._replicas.values():
            if worker.ready and (best is None or worker.in_flight < best.in_flight):
                best = worker
        if best is None:
            raise self._no_replica()
        return best

    def _no_replica(self) -> Exception:
        """Why no replica takes the call, as it is."""
        if not self._ready or not self._replicas:
            return ModelNotReady(f"model '{self.name}' is not loaded (unloading, or loading again)")
        if any(
            worker.process is not None and worker.process.returncode is None
            for worker in self._replicas.values()
        ):
            return WorkerUnavailable(
                f"model '{self.name}' has no replica ready: its workers do not answer their heartbeat; "
                "try again"
            )
        return WorkerUnavailable(
            f"model '{self.name}' has no replica ready: its worker exited and is being replaced; try again"
        )

    def _deadline(self) -> Deadline | None:
        return call_deadline(self.name, self._timeout)

    # Lifecycle

    async def load(self) -> bool:
        self.pool = pool = await self._pools.pool_for(self.settings)
        try:
            self._placed = set()
            pool.placing.add(self)
            targets = pool.place(self, await self._replica_limit(pool))
            if not targets:
                raise ModelLoadError("the worker pool has no workers")
            loads = (self.load_replica(worker) for worker in targets)
            try:
                results = await asyncio.gather(*loads, return_exceptions=True)
            except asyncio.CancelledError:  # the load's deadline: no replica stays behind
                await self.unload()
                raise
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures:
                await self.unload()
                raise failures[0]
            pool.models.add(self)
        finally:
            pool.loading -= 1
            pool.placing.discard(self)
            if self not in pool.models:  # failed: the pool may be left without models
                await self._pools.release(pool)
        return True

    async def _replica_limit(self, pool: WorkerPool) -> int | None:
        """The runtime's `replica_limit`, asked of a worker (the runtime may
        not import in this process); not asked when it cannot matter."""
        if pool.size < 2 or self.settings.replicas == 1:
            return None
        settings = self.settings
        source = str(settings.source) if settings.source is not None else None
        try:
            asked = next((worker for worker in pool.workers if worker.ready), pool.workers[0])
            limit: int | None = await asked.call(
                protocol.REPLICA_LIMIT, settings.model_dump(mode="json"), source
            )
        except WorkerUnavailable as error:
            raise ModelLoadError(f"cannot place the model's replicas: {error}") from None
        except CoreError as error:
            raise ModelLoadError(error.message) from None
        return limit

    async def load_replica(self, worker: WorkerProcess, retry: bool = True) -> None:
        """Load the model into `worker`. A worker that exits meanwhile takes
        every load in it down, this model's whether or not it is the cause:
        with `retry`, the load is tried once more, alone, in the worker that
        replaces it, and fails only if that one exits too."""
        settings = self.settings
        source = str(settings.source) if settings.source is not None else None
        try:
            await worker.call(protocol.LOAD, self.uid, settings.model_dump(mode="json"), source)
        except WorkerUnavailable:
            await worker.exited.wait()
            if not retry or self.pool is None:
                raise ModelLoadError(
                    f"{worker.describe()} exited while loading the model ({worker.exit_reason})"
                ) from None
            pool = self.pool
            async with pool.suspects:
                await self.load_replica(await pool.replacement(worker), retry=False)
            return
        except Exception as error:
            raise ModelLoadError(getattr(error, "message", str(error))) from None
        self._replicas[worker.index] = worker

    async def unload(self) -> bool:
        if self.pool is not None:
            self.pool.models.discard(self)
        replicas, self._replicas = self._replicas, {}
        for worker in replicas.values():
            try:
                await worker.call(protocol.UNLOAD, self.uid, deadline=self._deadline())
            except WorkerUnavailable:  # gone with its worker
                pass
            except CoreError as error:  # a hung worker: the heartbeat replaces it
                logger.error(
                    "model '%s' did not unload from %s: %s", self.name, worker.describe(), error.message
                )
        if self.pool is not None:
            await self._pools.release(self.pool)
        return True

    # Inference: bytes in, bytes out

    async def infer_http(
        self, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        result: tuple[int, bytes, list[tuple[bytes, bytes]]] = await self._pick().call(
            protocol.INFER_HTTP, self.uid, headers, body, deadline=self._deadline()
        )
        return result

    async def infer_grpc(
        self, headers: Mapping[str, str], data: bytes
    ) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        result: tuple[bytes, tuple[tuple[str, str], ...]] = await self._pick().call(
            protocol.INFER_GRPC, self.uid, headers, data, deadline=self._deadline()
        )
        return result

    # The Model contract, for every other path (V1, explain, generate, streaming)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return await self._model_call("infer", payload)  # type: ignore[no-any-return]

    async def explain(self, payload: InferenceRequest) -> InferenceResponse:
        return await self._model_call("explain", payload)  # type: ignore[no-any-return]

    async def metadata(self) -> MetadataModelResponse:
        return await self._model_call("metadata")  # type: ignore[no-any-return]

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            replica = self._pick()
            stream = replica.stream(
                protocol.STREAM, self.uid, payload, item_timeout=self._timeout, name=self.name
            )
            async for response in stream:
                yield response

    async def collect_statistics(self) -> InferenceStatistics:
        """The statistics of every replica, added up (each worker counts the
        requests it served)."""
        found = []
        for worker in self._replicas.values():
            if worker.ready:
                with contextlib.suppress(WorkerUnavailable):
                    found.append(
                        await worker.call(
                            protocol.CALL, self.uid, "statistics", (), deadline=self._deadline()
                        )
                    )
        return InferenceStatistics.combined(found)

    async def _model_call(self, method: str, *args: Any) -> Any:
        return await self._pick().call(protocol.CALL, self.uid, method, args, deadline=self._deadline())
