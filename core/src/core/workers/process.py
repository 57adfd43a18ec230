"""`WorkerProcess`: one worker as the server process sees it, a subprocess
and the connection its calls go through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import CoreError
from . import protocol
from .protocol import FramedProtocol

logger = logging.getLogger(__name__)

# A call's answer: one future, or a queue for calls that stream.
_Waiter = asyncio.Future[Any] | asyncio.Queue[Any]

# A worker that has not said it is ready after this long is killed and replaced.
START_TIMEOUT = 120.0

# Called with the pid of every worker process that exits, of any pool, once
# it is gone (the metrics fold the files it wrote).
exit_listeners: list[Callable[[int], None]] = []


class WorkerUnavailable(CoreError):
    """The worker serving a request went away: the request was not answered."""

    status_code = 503
    grpc_code = "UNAVAILABLE"


class WorkerProcess:
    def __init__(
        self, index: int, python: str, settings_json: str, variables: dict[str, str] | None = None
    ) -> None:
        self.index = index
        self.python = python
        self.variables = variables
        self._settings_json = settings_json
        self.process: asyncio.subprocess.Process | None = None
        self.ready = False
        # Calls sent and not yet answered: the least-busy replica has the fewest.
        self.in_flight = 0
        self._calls: dict[int, _Waiter] = {}
        self._next_call = 1
        self._protocol: FramedProtocol | None = None
        self._started: asyncio.Future[None] | None = None
        self.exited = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def describe(self) -> str:
        return f"worker {self.index} (pid {self.pid})"

    async def start(self) -> None:
        """Start the subprocess and wait until it says it is ready."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.python, "-m", "core.workers.worker",
                "--fd", str(theirs.fileno()), "--index", str(self.index),
                "--settings", self._settings_json,
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=self.variables,
            )  # fmt: skip
        finally:
            theirs.close()
        self._started = loop.create_future()
        connection = self._protocol = FramedProtocol(self._on_message, self._on_closed)
        await loop.create_unix_connection(lambda: connection, sock=ours)
        self._watch = asyncio.create_task(self._wait_exit())
        try:
            await asyncio.wait_for(asyncio.shield(self._started), START_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError) as error:
            self.kill()
            raise WorkerUnavailable(f"{self.describe()} did not start: {error or 'timed out'}") from None
        self.ready = True
        logger.info("%s is ready", self.describe())

    async def _wait_exit(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        self.ready = False
        for listener in exit_listeners:
            try:
                listener(self.process.pid)
            except Exception:
                logger.exception("an exit listener failed for %s", self.describe())
        if self._protocol is not None:
            self._protocol.close()
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        log = logger.info if code == 0 else logger.error
        log("%s exited (%s)", self.describe(), how)
        self.exited.set()

    def _on_message(self, message: tuple[int, str, Any]) -> None:
        call_id, status, value = message
        if call_id == 0:  # the worker's hello
            if self._started is not None and not self._started.done():
                self._started.set_result(None)
            return
        waiter = self._calls.get(call_id)
        if waiter is None:
            return
        if isinstance(waiter, asyncio.Queue):
            waiter.put_nowait((status, value))
            if status != protocol.ITEM:
                del self._calls[call_id]
            return
        del self._calls[call_id]
        if waiter.done():
            return
        if status == protocol.OK:
            waiter.set_result(value)
        else:
            waiter.set_exception(protocol.decode_error(value))

    def _on_closed(self) -> None:
        """The worker is gone: every call it had fails now, not at a timeout."""
        self.ready = False
        error = WorkerUnavailable(f"{self.describe()} exited before answering")
        if self._started is not None and not self._started.done():
            self._started.set_exception(ConnectionError("the worker exited while starting"))
        calls, self._calls = self._calls, {}
        for waiter in calls.values():
            if isinstance(waiter, asyncio.Queue):
                waiter.put_nowait((protocol.ERROR, protocol.encode_error(error)))
            elif not waiter.done():
                waiter.set_exception(error)

    def _send(self, kind: str, args: tuple[Any, ...], waiter: _Waiter) -> int:
        if self._protocol is None or self._protocol.closed:
            raise WorkerUnavailable(f"{self.describe()} is not running")
        call_id = self._next_call
        self._next_call += 1
        self._calls[call_id] = waiter
        self._protocol.send((call_id, kind, args))
        return call_id

    async def call(self, kind: str, *args: Any) -> Any:
        """Send a call and wait for its answer; the worker's CoreError is raised here."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        call_id = self._send(kind, args, future)
        self.in_flight += 1
        try:
            return await future
        finally:
            self.in_flight -= 1
            self._calls.pop(call_id, None)

    async def stream(self, kind: str, *args: Any) -> AsyncIterator[Any]:
        """A call answered by many messages: each item, until the end."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        call_id = self._send(kind, args, queue)
        self.in_flight += 1
        try:
            while True:
                status, value = await queue.get()
                if status == protocol.ITEM:
                    yield value
                elif status == protocol.END:
                    return
                else:
                    raise protocol.decode_error(value)
        finally:
            self.in_flight -= 1
            self._calls.pop(call_id, None)

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the connection (the worker exits when it sees it close), then
        wait; kill it if it does not go in time."""
        self.ready = False
        if self._protocol is not None:
            self._protocol.close()
        if self.process is None or self.process.returncode is not None:
            return
        try:
            await asyncio.wait_for(self.exited.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self.exited.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
