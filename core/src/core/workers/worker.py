"""A worker process: `python -m core.workers.worker --fd N ...`, started by
the server process. It holds the model instances placed on it and answers
the server's calls: request bytes in, response bytes out for inference, so
the parsing, the model and the encoding all run here."""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import logging
import os
import signal
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import CoreError, ModelLoadError, ModelNotReady
from ..grpc.infer import infer_message
from ..logs import configure_logging
from ..model import Model
from ..observability import Observability
from ..process import configure_process
from ..registry import ModelEntry, load_instance, unload_instance
from ..repository.implementation import resolve_implementation
from ..rest.fast_infer import respond_infer
from ..settings import ModelSettings, Settings
from . import protocol
from .protocol import FramedProtocol

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The instance the current call is for: the server has already resolved the
# model's name and version to it, so the worker's dataplane looks no further.
_target: contextvars.ContextVar[str] = contextvars.ContextVar("core_worker_target")


class WorkerModels:
    """The registry of a worker, as its DataPlane uses it: every lookup gives
    the instance the current call targets."""

    def __init__(self) -> None:
        self.instances: dict[str, Model] = {}

    def get(self, name: str, version: str | None = None) -> Model:
        model = self.instances.get(_target.get())
        if model is None:
            raise ModelNotReady(f"model '{name}' is not loaded in this worker")
        return model

    def versions(self, name: str) -> list[ModelEntry]:
        return []

    def entries(self) -> list[ModelEntry]:
        return []


def settings_from_message(values: dict[str, Any], source: str | None) -> ModelSettings:
    settings = ModelSettings.model_validate(values)
    settings._source = Path(source) if source else None
    return settings


class Worker:
    def __init__(self, settings: Settings, observability: Observability | None = None) -> None:
        self.models = WorkerModels()
        self.observability = observability or Observability(settings, worker=True)
        self.dataplane = self.observability.dataplane(self.models)  # type: ignore[arg-type]
        self.dataplane.model_deadlines = False  # the server process holds them
        # Times the whole handling of REST and gRPC infer requests (None when
        # neither metrics nor latency logging are on).
        self._measure = self.observability.request_entry()
        # The calls being answered, by call id: a CANCEL message stops one.
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._connection: FramedProtocol | None = None
        self.closed = asyncio.Event()

    def flush_metrics(self) -> None:
        """Core's metrics, counted as plain numbers, into this worker's
        multiprocess files (see core.metrics.store)."""
        if self.observability.store is not None:
            self.observability.store.flush()

    async def flush_metrics_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush_metrics()

    def connect(self, connection: FramedProtocol) -> None:
        self._connection = connection

    def on_message(self, message: tuple[int, str, tuple[Any, ...]]) -> None:
        call_id, kind, args = message
        if kind == protocol.PING:  # answered here: a worker whose loop turns is alive
            self._reply(call_id, protocol.OK, None)
            return
        if kind == protocol.CANCEL:
            running = self._tasks.get(call_id)
            if running is not None:
                running.cancel()
            return
        # Held here until answered (`_answer` lets go of it): a running task
        # nothing refers to may be collected.
        self._tasks[call_id] = asyncio.get_running_loop().create_task(self._answer(call_id, kind, args))

    def on_closed(self) -> None:
        self.closed.set()

    def _reply(self, call_id: int, status: str, value: Any) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.send((call_id, status, value))

    async def _answer(self, call_id: int, kind: str, args: tuple[Any, ...]) -> None:
        try:
            if kind == protocol.STREAM:
                async for item in self.stream(*args):
                    self._reply(call_id, protocol.ITEM, item)
                self._reply(call_id, protocol.END, None)
                return
            self._reply(call_id, protocol.OK, await self.call(kind, args))
        except asyncio.CancelledError:
            return  # the server gave up on the call: nobody waits for an answer
        except CoreError as error:
            self._reply(call_id, protocol.ERROR, protocol.encode_error(error))
        except Exception:
            logger.exception("unhandled error in a %s call", kind)
            self._reply(call_id, protocol.ERROR, (500, "INTERNAL", "internal server error"))
        finally:
            self._tasks.pop(call_id, None)

    async def call(self, kind: str, args: tuple[Any, ...]) -> Any:
        """Answer one call of the worker protocol (a Ray replica of core-ray
        answers its calls so too); a CoreError is the call's error."""
        if kind == protocol.INFER_HTTP:
            uid, headers, body = args
            _target.set(uid)
            return await self._infer(respond_infer(self.dataplane, self._name(uid), None, headers, body))
        if kind == protocol.INFER_GRPC:
            uid, headers, data = args
            _target.set(uid)
            return await self._infer(infer_message(self.dataplane, data, headers))
        if kind == protocol.CALL:
            uid, method, call_args = args
            _target.set(uid)
            return await self._model_call(uid, method, call_args)
        if kind == protocol.LOAD:
            await self._load(*args)
            return None
        if kind == protocol.REPLICA_LIMIT:
            return self._replica_limit(*args)
        if kind == protocol.UNLOAD:
            await self._unload(*args)
            return None
        if kind == protocol.FLUSH_METRICS:
            self.flush_metrics()
            return None
        raise CoreError(f"unknown worker call '{kind}'")

    def _infer(self, call: Awaitable[T]) -> Awaitable[T]:
        return call if self._measure is None else self._measure(call)

    def _name(self, uid: str) -> str:
        return self.models.get(uid).name

    async def _model_call(self, uid: str, method: str, args: tuple[Any, ...]) -> Any:
        name = self._name(uid)
        if method == "infer":
            return await self.dataplane.infer(args[0], name)
        if method == "explain":
            return await self.dataplane.explain(args[0], name)
        if method == "metadata":
            return await self.models.get(name).metadata()
        if method == "statistics":
            return self.models.get(name).statistics
        raise CoreError(f"unknown model call '{method}'")

    async def stream(self, uid: str, payload: Any) -> Any:
        _target.set(uid)
        async for response in self.dataplane.infer_stream(payload, self._name(uid)):
            yield response

    async def _load(self, uid: str, values: dict[str, Any], source: str | None) -> None:
        settings = settings_from_message(values, source)
        try:
            model = resolve_implementation(settings)(settings)
            await load_instance(model)
        except CoreError:
            raise
        except Exception as error:
            logger.exception("model '%s' failed to load", settings.name)
            raise ModelLoadError(f"{type(error).__name__}: {error}") from None
        self.models.instances[uid] = model

    def _replica_limit(self, values: dict[str, Any], source: str | None) -> int | None:
        settings = settings_from_message(values, source)
        try:
            return resolve_implementation(settings).replica_limit(settings)
        except CoreError:
            raise
        except Exception as error:
            raise ModelLoadError(f"{type(error).__name__}: {error}") from None

    async def _unload(self, uid: str) -> None:
        model = self.models.instances.pop(uid, None)
        if model is not None:
            await unload_instance(model)


async def serve(fd: int, settings: Settings) -> None:
    worker = Worker(settings)
    connection = FramedProtocol(worker.on_message, worker.on_closed)
    worker.connect(connection)
    loop = asyncio.get_running_loop()
    await loop.create_unix_connection(lambda: connection, sock=socket.socket(fileno=fd))
    connection.send((0, protocol.OK, os.getpid()))  # ready
    # Besides at each scrape: what a killed worker counted stays counted, but
    # for its last second.
    flushing = asyncio.create_task(worker.flush_metrics_every(1.0))
    try:
        await worker.closed.wait()
    finally:
        flushing.cancel()
        worker.flush_metrics()
        worker.observability.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="core.workers.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--settings", default="{}")
    options = parser.parse_args(argv)
    settings = Settings.model_validate_json(options.settings)
    configure_logging(settings, worker=options.index)
    # Ctrl-C (and, under some supervisors, SIGTERM) reaches the whole process
    # group: the server decides when workers stop, closing their connection
    # once the requests in flight are done. A worker whose server is gone
    # sees its connection close and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_process(settings, worker=True)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(options.fd, settings))
    else:
        uvloop.run(serve(options.fd, settings))


if __name__ == "__main__":
    main()
