"""The predict thread pool: results, exceptions, concurrency."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.executor import ThreadPool, run_in_thread


def test_result_and_exception_come_back() -> None:
    async def main() -> None:
        assert await run_in_thread(sum, [1, 2, 3]) == 6
        with pytest.raises(ZeroDivisionError):
            await run_in_thread(lambda: 1 / 0)

    asyncio.run(main())


def test_jobs_submitted_in_one_tick_run_in_parallel() -> None:
    # Both jobs must be inside wait() at once for the barrier to open; run
    # one after the other, the first would time out and break it.
    barrier = threading.Barrier(2, timeout=10)
    pool = ThreadPool(max_threads=4)

    async def main() -> list[int]:
        return list(await asyncio.gather(pool.submit(barrier.wait), pool.submit(barrier.wait)))

    assert sorted(asyncio.run(main())) == [0, 1]


def test_the_event_loop_runs_while_a_job_blocks() -> None:
    release = threading.Event()
    pool = ThreadPool(max_threads=1)

    async def main() -> str:
        job = pool.submit(release.wait, 10)
        await asyncio.sleep(0)  # the loop is free: this coroutine goes on
        release.set()
        assert await job is True
        return "done"

    assert asyncio.run(main()) == "done"


def test_jobs_past_the_cap_wait_for_a_free_thread() -> None:
    pool = ThreadPool(max_threads=1)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(pool.submit(lambda i=i: i) for i in range(20))))

    assert asyncio.run(main()) == list(range(20))
    assert len(pool._threads) == 1


def test_blocking_calls_move_inline_only_once_measured_fast() -> None:
    from core.executor import BlockingCalls

    calls = BlockingCalls()
    main_thread = threading.get_ident()

    async def where(size: int) -> bool:
        return await calls.run(size, lambda: threading.get_ident() == main_thread)

    async def main() -> list[bool]:
        # First call of a size: a thread (nothing measured yet); then inline.
        return [await where(4), await where(4), await where(5), await where(4000)]

    assert asyncio.run(main()) == [False, True, True, False]


def test_blocking_calls_that_turn_slow_go_back_to_a_thread() -> None:
    from core.executor import BlockingCalls

    calls = BlockingCalls()
    main_thread = threading.get_ident()
    slow = threading.Event()

    def work() -> bool:
        if slow.is_set():
            time.sleep(0.05)  # 50 ms: far over the 1 ms budget
        return threading.get_ident() == main_thread

    async def main() -> list[bool]:
        ran_inline = [await calls.run(8, work) for _ in range(3)]
        slow.set()
        ran_inline += [await calls.run(8, work) for _ in range(2)]
        return ran_inline

    # thread (unmeasured), inline, inline, inline but slow, then a thread again.
    assert asyncio.run(main()) == [False, True, True, True, False]


def test_a_call_that_waits_stalls_the_loop_once_at_most() -> None:
    from core.executor import BlockingCalls

    calls = BlockingCalls()
    main_thread = threading.get_ident()

    def wait() -> bool:
        time.sleep(0.02)  # no CPU: cheap by its thread's CPU time, 20 ms of wall time
        return threading.get_ident() == main_thread

    async def main() -> list[bool]:
        return [await calls.run(8, wait) for _ in range(5)]

    # A thread (cheap CPU), inline once (it overruns), then threads for good.
    assert asyncio.run(main()) == [False, True, False, False, False]


def test_a_zero_budget_keeps_every_call_in_a_thread() -> None:
    from core import executor

    calls = executor.BlockingCalls()
    main_thread = threading.get_ident()
    executor.configure(inline_budget=0)
    try:

        async def main() -> list[bool]:
            return [await calls.run(4, lambda: threading.get_ident() == main_thread) for _ in range(3)]

        assert asyncio.run(main()) == [False, False, False]
    finally:
        executor.configure(inline_budget=0.001)


@pytest.mark.parametrize(("limit", "expected"), [(None, 3), (1, 1)])
def test_calls_per_model_limits_one_models_calls_in_threads(limit: int | None, expected: int) -> None:
    # Three calls of one model, each holding its thread until all three could
    # have started: the most running at once is what the limit allows.
    from core import executor

    running, most = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            if most == 3:
                release.set()
        release.wait(0.5)
        with lock:
            running -= 1

    async def scenario() -> None:
        calls = executor.BlockingCalls()
        await asyncio.gather(*(calls.run(1, call) for _ in range(3)))

    executor.configure(inline_budget=0, calls_per_model=limit)
    try:
        asyncio.run(scenario())
    finally:
        executor.configure(inline_budget=0.001)
    assert most == expected
