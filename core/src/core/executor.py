"""Running blocking framework calls off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(thread_name_prefix="core-predict")
    return _executor


async def run_in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a CPU-bound call (a framework's predict) in a thread, so the event
    loop keeps serving other requests meanwhile. Most frameworks release the
    GIL in their numeric kernels."""
    return await asyncio.get_running_loop().run_in_executor(_get_executor(), function, *args)
