"""The batch window: rows of several requests run through the detector
together, once the window holds `batch_size` rows or `batch_timeout`
seconds after its first request, whichever comes first. Every request of
the window waits for that run and gets its result (its own rows of the
per-row outputs), so no request is answered empty."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .results import Detection

Detect = Callable[[np.ndarray, dict[str, Any]], Awaitable[Detection]]


@dataclass
class Share:
    """What one request gets of its window's run."""

    detection: Detection
    start: int
    stop: int
    requests: int


@dataclass
class _Window:
    parameters: dict[str, Any]
    done: asyncio.Future[Detection]
    parts: list[np.ndarray] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class BatchWindow:
    def __init__(self, size: int, timeout: float, detect: Detect) -> None:
        self.size = size
        self.timeout = timeout
        self._detect = detect
        # One open window per set of predict parameters: requests that ask
        # for different ones are not run together.
        self._open: dict[str, _Window] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def add(self, rows: np.ndarray, parameters: dict[str, Any], key: str) -> Share:
        loop = asyncio.get_running_loop()
        window = self._open.get(key)
        if window is None:
            window = _Window(parameters, loop.create_future())
            self._open[key] = window
            window.timer = loop.call_later(self.timeout, self._close, key, window)
        start = window.rows
        window.parts.append(rows)
        window.rows += len(rows)
        if window.rows >= self.size:
            self._close(key, window)
        # A request that leaves does not take its window's run with it.
        detection = await asyncio.shield(window.done)
        return Share(detection, start, start + len(rows), len(window.parts))

    def close_all(self) -> None:
        """Run every open window now (at unload: nobody is left waiting)."""
        for key, window in list(self._open.items()):
            self._close(key, window)

    async def drain(self) -> None:
        self.close_all()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _close(self, key: str, window: _Window) -> None:
        if self._open.get(key) is window:
            del self._open[key]
        if window.timer is not None:
            window.timer.cancel()
            window.timer = None
        task = asyncio.get_running_loop().create_task(self._run(window))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, window: _Window) -> None:
        try:
            detection = await self._detect(np.concatenate(window.parts), window.parameters)
        except Exception as error:  # every request of the window gets it
            window.done.set_exception(error)
        else:
            window.done.set_result(detection)
        # Nobody may be waiting any more (all left): marks an exception
        # retrieved, so asyncio logs no "never retrieved" warning.
        window.done.exception()
