"""`WorkerModel`: what the server's registry holds for a model that lives in
worker processes. Each call goes to the least-busy worker holding a ready
replica; inference requests travel as the bytes the client sent."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..model import Model
from ..settings import ModelSettings
from ..statistics import InferenceStatistics
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse
from . import protocol
from .process import WorkerProcess, WorkerUnavailable

if TYPE_CHECKING:
    from .pool import WorkerPool, WorkerPools


class WorkerModel(Model):
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
            raise WorkerUnavailable(
                f"model '{self.name}' has no replica ready: its worker is being replaced, try again"
            )
        return best

    # Lifecycle

    async def load(self) -> bool:
        self.pool = pool = await self._pools.pool_for(self.settings)
        try:
            targets = pool.place(self.settings.replicas)
            if not targets:
                raise ModelLoadError("the worker pool has no workers")
            self._placed = {worker.index for worker in targets}
            loads = (self.load_replica(worker) for worker in targets)
            results = await asyncio.gather(*loads, return_exceptions=True)
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures:
                await self.unload()
                raise failures[0]
            pool.models.add(self)
        finally:
            pool.loading -= 1
            if self not in pool.models:  # failed: the pool may be left without models
                await self._pools.release(pool)
        return True

    async def load_replica(self, worker: WorkerProcess) -> None:
        settings = self.settings
        source = str(settings.source) if settings.source is not None else None
        try:
            await worker.call(protocol.LOAD, self.uid, settings.model_dump(mode="json"), source)
        except WorkerUnavailable:
            raise ModelLoadError(f"{worker.describe()} exited while loading the model") from None
        except Exception as error:
            raise ModelLoadError(getattr(error, "message", str(error))) from None
        self._replicas[worker.index] = worker

    async def unload(self) -> bool:
        if self.pool is not None:
            self.pool.models.discard(self)
        replicas, self._replicas = self._replicas, {}
        for worker in replicas.values():
            with contextlib.suppress(WorkerUnavailable):  # gone with its worker
                await worker.call(protocol.UNLOAD, self.uid)
        if self.pool is not None:
            await self._pools.release(self.pool)
        return True

    # Inference: bytes in, bytes out

    async def infer_http(
        self, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        result: tuple[int, bytes, list[tuple[bytes, bytes]]] = await self._pick().call(
            protocol.INFER_HTTP, self.uid, headers, body
        )
        return result

    async def infer_grpc(
        self, headers: Mapping[str, str], data: bytes
    ) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        result: tuple[bytes, tuple[tuple[str, str], ...]] = await self._pick().call(
            protocol.INFER_GRPC, self.uid, headers, data
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
            async for response in self._pick().stream(protocol.STREAM, self.uid, payload):
                yield response

    async def collect_statistics(self) -> InferenceStatistics:
        """The statistics of every replica, added up (each worker counts the
        requests it served)."""
        found = []
        for worker in self._replicas.values():
            if worker.ready:
                with contextlib.suppress(WorkerUnavailable):
                    found.append(await worker.call(protocol.CALL, self.uid, "statistics", ()))
        return InferenceStatistics.combined(found)

    async def _model_call(self, method: str, *args: Any) -> Any:
        return await self._pick().call(protocol.CALL, self.uid, method, args)
