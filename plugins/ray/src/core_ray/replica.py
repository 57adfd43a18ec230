"""`ModelReplica`: one replica of a model's Ray Serve deployment. It loads
the model with core's own worker code (the runtime's plugin imported here,
its batcher attached here) and answers the calls of core's worker protocol
that `RayModel` sends it: request bytes in, answer bytes out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from core.errors import CoreError
from core.process import configure_process
from core.settings import Settings
from core.workers import protocol
from core.workers.worker import Worker

logger = logging.getLogger(__name__)

# How often a replica's metrics reach its files (see core.metrics.store).
METRICS_FLUSH_SECONDS = 1.0


class ModelReplica:
    # Ray Serve awaits an async constructor: the replica is up once it returns.
    async def __init__(self, model: dict[str, Any], source: str | None, server: dict[str, Any]) -> None:  # type: ignore[misc]
        settings = Settings.model_validate(server)
        configure_process(settings, worker=True)  # as a worker process: replicas give the parallelism
        self.worker = Worker(settings)
        self.uid = uuid.uuid4().hex
        self.name = model["name"]
        # A load error fails the replica's start: Ray retries it, and the
        # deployment fails with this message when it keeps failing.
        await self.worker.call(protocol.LOAD, (self.uid, model, source))
        self._flushing = asyncio.create_task(self.worker.flush_metrics_every(METRICS_FLUSH_SECONDS))

    async def call(self, kind: str, *args: Any) -> tuple[str, Any]:
        """A worker-protocol call on this replica's model: (OK, value) or
        (ERROR, the CoreError's status, gRPC code and message)."""
        try:
            return protocol.OK, await self.worker.call(kind, (self.uid, *args))
        except CoreError as error:
            return protocol.ERROR, protocol.encode_error(error)
        except Exception:
            logger.exception("model '%s': unhandled error in a %s call", self.name, kind)
            return protocol.ERROR, (500, "INTERNAL", "internal server error")

    async def stream(self, payload: Any) -> AsyncIterator[tuple[str, Any]]:
        """predict_stream: (ITEM, response) for each, or a last (ERROR, ...)."""
        try:
            async for response in self.worker.stream(self.uid, payload):
                yield protocol.ITEM, response
        except CoreError as error:
            yield protocol.ERROR, protocol.encode_error(error)

    async def check_health(self) -> None:
        """Ray's health check: a replica whose model is gone is unhealthy."""
        if self.uid not in self.worker.models.instances:
            raise RuntimeError(f"model '{self.name}' is not loaded in this replica")

    async def __del__(self) -> None:
        """Ray's graceful stop of the replica: unload, last metrics flush."""
        flushing = getattr(self, "_flushing", None)  # absent when the load failed
        if flushing is not None:
            flushing.cancel()
        with contextlib.suppress(Exception):
            await self.worker.call(protocol.UNLOAD, (self.uid,))
        self.worker.flush_metrics()
