"""The adaptive batcher of one model instance: a bounded queue, a timer, and
one batch at a time through the model's own `predict`.

A batch starts with the oldest waiting request and takes the requests that
can merge with it (see `.merge`), in order of arrival. It runs as soon as it
has `max_batch_size` requests, or once `max_batch_time` seconds have passed
since its first request arrived. The model runs one batch at a time; the
requests that arrive meanwhile wait for the next, so under load batches fill
up on their own, and a request that has already waited `max_batch_time`
(while the model was busy) does not wait again."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING

from ..errors import BatchQueueFull, CoreError, InferenceError, ModelNotReady
from ..metrics.queues import set_batch_request_queue
from ..types import InferenceRequest, InferenceResponse
from .merge import batch_key, merge_requests, split_response

if TYPE_CHECKING:
    from ..model import Model

logger = logging.getLogger(__name__)

# Requests that may wait, per request of a full batch, when the model's
# settings do not say (`max_batch_queue_size`).
QUEUE_SIZE_PER_BATCH_SIZE = 8


class _Alone:
    """The batch key of a request that cannot merge with any: it runs as it
    came, in a batch of its own."""

    __slots__ = ()


class _Pending:
    __slots__ = ("arrival", "future", "payload")

    def __init__(self, payload: InferenceRequest, future: asyncio.Future[InferenceResponse], arrival: float):
        self.payload = payload
        self.future = future
        self.arrival = arrival


class Batcher:
    """Created on the running event loop, where its requests arrive."""

    def __init__(self, model: Model) -> None:
        settings = model.settings
        self.model_name = model.name
        self.model_version = model.version
        self.max_batch_size = settings.max_batch_size
        self.max_batch_time = settings.max_batch_time
        self.max_queue_size = (
            settings.max_batch_queue_size or QUEUE_SIZE_PER_BATCH_SIZE * settings.max_batch_size
        )
        self._by_value = model.batch_by_parameter_values
        self._check = model.check_request
        self._predict: Callable[[InferenceRequest], Awaitable[InferenceResponse]] = model.predict
        self._statistics = model.statistics
        # Waiting requests by batch key; each deque in order of arrival.
        self._queues: dict[Hashable, deque[_Pending]] = {}
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"batcher of model '{model.name}'")

    @property
    def queue_size(self) -> int:
        """Requests waiting for a batch (not those in the running one)."""
        return self._size

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """`payload`'s answer, from the model's predict on the batch it joins."""
        if self._stopping:
            raise ModelNotReady(f"model '{self.model_name}' is unloading")
        if self._size >= self.max_queue_size:
            raise BatchQueueFull(self.model_name, self._size)
        self._check(payload)
        key = batch_key(payload, self._by_value)
        if key is None:
            key = _Alone()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        pending = _Pending(payload, self._loop.create_future(), self._loop.time())
        queue.append(pending)
        self._resize(1)
        if self._size == 1 or len(queue) >= self.max_batch_size:
            self._wake()
        return await pending.future

    async def stop(self) -> None:
        """Take no more requests (503), run the waiting ones at once without
        waiting out `max_batch_time`, and end."""
        self._stopping = True
        self._wake()
        await asyncio.wait([self._task])

    async def _run(self) -> None:
        try:
            while True:
                if not self._queues:
                    if self._stopping:
                        return
                    await self._sleep(None)
                    continue
                key, queue = min(self._queues.items(), key=lambda item: item[1][0].arrival)
                deadline = queue[0].arrival + self.max_batch_time
                while (
                    len(queue) < self.max_batch_size and not self._stopping and self._loop.time() < deadline
                ):
                    await self._sleep(deadline)
                batch = self._take(key, queue)
                if batch:
                    await self._execute(key, batch)
        finally:
            # Cancelled (the event loop is closing): nobody will run these.
            self._stopping = True
            for queue in self._queues.values():
                for pending in queue:
                    _fail(pending.future, ModelNotReady(f"model '{self.model_name}' is unloading"))
            self._queues.clear()
            self._resize(-self._size)

    def _take(self, key: Hashable, queue: deque[_Pending]) -> list[_Pending]:
        batch: list[_Pending] = []
        skipped = 0
        while queue and len(batch) < self.max_batch_size:
            pending = queue.popleft()
            if not pending.future.done():  # done: its caller went away
                batch.append(pending)
            else:
                skipped += 1
        if not queue:
            del self._queues[key]
        self._resize(-(len(batch) + skipped))
        return batch

    def _resize(self, change: int) -> None:
        self._size += change
        set_batch_request_queue(self.model_name, self.model_version, self._size)

    async def _execute(self, key: Hashable, batch: list[_Pending]) -> None:
        payloads = [pending.payload for pending in batch]
        try:
            if isinstance(key, _Alone):
                responses = [await self._predict(payloads[0])]
            else:
                response = await self._predict(merge_requests(payloads, self._by_value))
                responses = split_response(self.model_name, response, payloads)
        except CoreError as error:
            failure: CoreError = error
        except Exception as error:
            logger.exception(
                "model '%s' raised in predict on a batch of %d requests", self.model_name, len(batch)
            )
            failure = InferenceError.raised_by(self.model_name, error)
        except BaseException:
            for pending in batch:
                _fail(pending.future, ModelNotReady(f"model '{self.model_name}' is unloading"))
            raise
        else:
            self._statistics.executed()
            for pending, answer in zip(batch, responses, strict=True):
                if not pending.future.done():
                    pending.future.set_result(answer)
            return
        for pending in batch:
            _fail(pending.future, failure)

    async def _sleep(self, deadline: float | None) -> None:
        """Until `deadline` (loop time; None: no limit) or the next `_wake`."""
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_at(deadline, self._wake) if deadline is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _fail(future: asyncio.Future[InferenceResponse], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
