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

from ..deadlines import Deadline, call_deadline, expiring
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
        self,
        index: int,
        python: str,
        settings_json: str,
        variables: dict[str, str] | None = None,
        heartbeat_timeout: float = 10.0,
    ) -> None:
        self.index = index
        self.python = python
        self.variables = variables
        self.heartbeat_timeout = heartbeat_timeout
        self._settings_json = settings_json
        self.process: asyncio.subprocess.Process | None = None
        # Started and not gone; `ready` also needs it to answer its heartbeat.
        self._running = False
        self._responsive = True
        # How it ended, once it has: "exit code 3", "killed by signal 9", ...
        self.exit_reason = ""
        self._killed_because = ""
        self._heartbeat: asyncio.Task[None] | None = None
        # Calls sent and not yet answered: the least-busy replica has the fewest.
        self.in_flight = 0
        self._calls: dict[int, _Waiter] = {}
        self._next_call = 1
        self._protocol: FramedProtocol | None = None
        self._started: asyncio.Future[None] | None = None
        self.exited = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Takes calls: started, running, and answering its heartbeat."""
        return self._running and self._responsive

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
        self._running = True
        self._heartbeat = asyncio.create_task(self._beat())
        logger.info("%s is ready", self.describe())

    async def _beat(self) -> None:
        """Ping the worker every second or so. One that does not answer for
        half of `heartbeat_timeout` is unready (its replicas take no calls);
        for all of it, it is killed, and the pool replaces it as any worker
        that exits. A frozen worker (SIGSTOP, a model blocking its event
        loop) is thereby a detected failure, not a hang."""
        timeout = self.heartbeat_timeout
        interval = min(1.0, timeout / 4)
        loop = asyncio.get_running_loop()
        while self._running:
            await asyncio.sleep(interval)
            sent = loop.time()
            ping = asyncio.ensure_future(self.call(protocol.PING))
            done, _ = await asyncio.wait([ping], timeout=timeout / 2)
            if not done and self._running:
                self._responsive = False
                logger.warning(
                    "%s has not answered its heartbeat for %.1f s: unready", self.describe(), timeout / 2
                )
                done, _ = await asyncio.wait([ping], timeout=max(0.0, sent + timeout - loop.time()))
            if not done:
                ping.cancel()
                if self._running:
                    self._killed_because = f"no heartbeat for {timeout:g} s"
                    logger.error(
                        "%s has not answered its heartbeat for %g s: killing it", self.describe(), timeout
                    )
                    self.kill()
                return
            if ping.exception() is not None:  # gone: the exit watch reports it
                return
            if not self._responsive:
                logger.info("%s answers its heartbeat again: ready", self.describe())
                self._responsive = True

    async def _wait_exit(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        self._running = False
        for listener in exit_listeners:
            try:
                listener(self.process.pid)
            except Exception:
                logger.exception("an exit listener failed for %s", self.describe())
        if self._protocol is not None:
            self._protocol.close()
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if self._killed_because:
            how = f"killed: {self._killed_because}"
        self.exit_reason = how
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
        self._running = False
        reason = f" ({self._killed_because})" if self._killed_because else ""
        error = WorkerUnavailable(f"{self.describe()} exited before answering{reason}")
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

    async def call(self, kind: str, *args: Any, deadline: Deadline | None = None) -> Any:
        """Send a call and wait for its answer, until `deadline` at most
        (DeadlineExceeded then); the worker's CoreError is raised here. A
        call given up on (deadline, cancelled caller) is cancelled in the
        worker too."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        call_id = self._send(kind, args, future)
        self.in_flight += 1
        try:
            with expiring(deadline):
                return await future
        finally:
            self.in_flight -= 1
            if self._calls.pop(call_id, None) is not None:
                self._cancel(call_id)

    async def stream(
        self, kind: str, *args: Any, item_timeout: float = 0.0, name: str = ""
    ) -> AsyncIterator[Any]:
        """A call answered by many messages: each item, until the end. Each
        wait for the next item lasts `item_timeout` seconds at most (0: no
        limit), and the client's deadline bounds the whole."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        call_id = self._send(kind, args, queue)
        self.in_flight += 1
        try:
            while True:
                with expiring(call_deadline(name, item_timeout)):
                    status, value = await queue.get()
                if status == protocol.ITEM:
                    yield value
                elif status == protocol.END:
                    return
                else:
                    raise protocol.decode_error(value)
        finally:
            self.in_flight -= 1
            if self._calls.pop(call_id, None) is not None:
                self._cancel(call_id)

    def _cancel(self, call_id: int) -> None:
        if self._protocol is not None and not self._protocol.closed:
            self._protocol.send((call_id, protocol.CANCEL, ()))

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the connection (the worker exits when it sees it close), then
        wait; kill it if it does not go in time."""
        self._running = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
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
