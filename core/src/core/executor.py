"""Running blocking framework calls off the event loop.

A lean thread pool rather than `loop.run_in_executor`: one C-implemented
queue, no concurrent.futures.Future to wrap, one `call_soon_threadsafe` per
result. On small predictions the hand-off is a visible share of the request
time, so it is kept to the minimum."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ThreadPool:
    def __init__(self, max_threads: int, name: str = "core-predict") -> None:
        self.max_threads = max_threads
        self.name = name
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        # Each job reserves an idle thread, or starts one while below the cap;
        # past it, jobs wait in the queue for the next thread to come free.
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self.max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, function, args = job
            try:
                result, error = function(*args), None
            except BaseException as exc:
                result, error = None, exc
            # RuntimeError: the loop closed meanwhile, and nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, result, error)
            del job, future, result, error
            with self._lock:
                self._idle += 1


_pool = ThreadPool(max_threads=min(32, (os.cpu_count() or 1) + 4))


async def run_in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a CPU-bound call (a framework's predict) in a thread, so the event
    loop keeps serving other requests meanwhile. Numeric kernels release the
    GIL, so such calls also run in parallel with the loop."""
    return await _pool.submit(function, *args)
