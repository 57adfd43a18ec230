"""The predict thread pool: results, exceptions, concurrency."""

from __future__ import annotations

import asyncio
import threading

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
