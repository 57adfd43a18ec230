"""Running blocking framework calls off the event loop.

A lean thread pool rather than `loop.run_in_executor`: one C-implemented
queue, no concurrent.futures.Future to wrap, one `call_soon_threadsafe` per
result. On small predictions the hand-off is a visible share of the request
time, so it is kept to the minimum."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import time
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
    """Run a blocking call (loading an artifact, a long predict) in a thread,
    so the event loop keeps serving other requests meanwhile. Numeric kernels
    release the GIL, so such calls also run in parallel with the loop. For
    per-request framework calls, `BlockingCalls` picks thread or inline.
    The call sees the caller's context variables (the current model, for
    log records and `core.log`; the current span)."""
    return await _pool.submit(contextvars.copy_context().run, function, *args)


# Calls measured below this many seconds (for inputs of their size) run inline.
_inline_budget = 0.001
_calls_per_model: int | None = None


def configure(inline_budget: float, calls_per_model: int | None = None) -> None:
    """Set the inline budget (seconds) of every `BlockingCalls`; 0 sends every
    call to the thread pool. `calls_per_model`: how many of one model's
    framework calls may run in threads at once (None: no limit)."""
    global _inline_budget, _calls_per_model
    _inline_budget = inline_budget
    _calls_per_model = calls_per_model


class BlockingCalls:
    """Runs one model's blocking framework calls where they cost least.

    A call goes to the thread pool unless calls of the same input size
    (rounded to a power of two) have been measured to finish within the
    inline budget (1 ms by default). Below that the hand-off to a thread costs
    about as much as the call itself, and gains the event loop nothing: a
    call that holds the GIL stops the loop just as long from another thread,
    since threads only trade the GIL every few milliseconds. Longer calls,
    and calls of sizes not seen yet, run in the thread pool and are timed
    there, so a model (or an input size) that turns slow moves off the loop.

    In a thread, a call is timed by its thread's CPU time: its wall time there
    also counts the waits for the GIL while the event loop parses other
    requests, which it would not pay inline (under load, a 0.8 ms call read
    1.5 ms and never came back to the loop). A call that waits on something
    else (I/O, a sleep, other threads) costs little CPU but stalls the loop
    when inline: the first inline run that overruns the budget marks its
    size, whose calls are timed by wall time from then on.
    """

    _SMOOTHING = 0.2  # weight of the newest duration in the moving average

    def __init__(self) -> None:
        self._estimates: dict[int, float] = {}
        # Sizes whose calls overran the budget inline although measured cheap:
        # they wait on something, and are timed by wall time in threads.
        self._waiting: set[int] = set()
        self._slots: asyncio.Semaphore | None = None

    async def run(self, size: int, function: Callable[..., T], *args: Any) -> T:
        bucket = size.bit_length()
        estimate = self._estimates.get(bucket)
        if estimate is not None and estimate < _inline_budget:
            start = time.perf_counter()
            try:
                return function(*args)
            finally:
                elapsed = time.perf_counter() - start
                if elapsed > _inline_budget:
                    self._waiting.add(bucket)
                self._record(bucket, elapsed)
        clock = time.perf_counter if bucket in self._waiting else time.thread_time
        if _calls_per_model is None:
            timed: tuple[T, float] = await _pool.submit(_timed, function, args, clock)
        else:
            if self._slots is None:
                self._slots = asyncio.Semaphore(_calls_per_model)
            async with self._slots:
                timed = await _pool.submit(_timed, function, args, clock)
        self._record(bucket, timed[1])
        return timed[0]

    def _record(self, bucket: int, elapsed: float) -> None:
        previous = self._estimates.get(bucket)
        self._estimates[bucket] = (
            elapsed if previous is None else previous + self._SMOOTHING * (elapsed - previous)
        )


def _timed(function: Callable[..., T], args: tuple[Any, ...], clock: Callable[[], float]) -> tuple[T, float]:
    start = clock()
    result = function(*args)
    return result, clock() - start
