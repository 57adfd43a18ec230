"""The loaded models: every version of every model, its state, and which
version answers requests that name none."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from . import batching
from .deadlines import Deadline, expiring, load_timeout
from .errors import CoreError, DeadlineExceeded, ModelLoadError, ModelNotFound, ModelNotReady
from .model import Model
from .model_context import model_context
from .remote import RemoteModel
from .repository.implementation import resolve_implementation
from .settings import ModelSettings, Settings
from .storage import localise
from .storage.metrics import record_fetch
from .types import State

logger = logging.getLogger(__name__)

_NUMERIC_VERSION = re.compile(r"[vV]?(\d+(?:\.\d+)*)")


@dataclass
class ModelEntry:
    name: str
    version: str | None
    state: State
    reason: str = ""
    model: Model | None = None
    # Its last load passed its deadline (load_timeout): given up on, it no
    # longer holds the server's readiness back.
    timed_out: bool = False


def version_key(version: str | None) -> tuple[int, tuple[int, ...], str]:
    # Numeric versions ("10", "1.10.0", "v2") compare part by part as numbers and
    # rank above names; no version ranks lowest.
    if version is None:
        return (0, (), "")
    numeric = _NUMERIC_VERSION.fullmatch(version)
    if numeric is not None:
        return (2, tuple(int(part) for part in numeric.group(1).split(".")), version)
    return (1, (), version)


class KeyedLocks:
    """A lock per key, held only while some task holds or waits for it: the
    keys of calls that come and go (model names, unknown ones included)
    leave nothing behind."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def of(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


# Instances of one runtime class load one at a time in a process; different
# runtimes load side by side, so a load that hangs holds up only its own
# runtime's (until its load deadline). Loading unpickles artifacts in
# threads, and two threads importing a framework's modules for the first
# time fail with "partially initialized module" errors: instances of one
# runtime are the loads that import the same modules.
runtime_loads = KeyedLocks()

# Different runtimes still import shared packages (a drift detector's load
# imports scikit-learn as the scikit-learn runtime's does); when two first
# imports of one package collide, the loads that failed for it load again,
# one at a time, since two retries would collide again. Loads stay
# independent: nothing waits unless this happened.
IMPORT_COLLISION = "partially initialized module"
IMPORT_RETRIES = 3
import_retries = KeyedLocks()


def collided_on_import(error: BaseException) -> bool:
    """Python reports the collision as a "partially initialized module", or
    as importlib's own "deadlock detected by _ModuleLock", by its timing."""
    if type(error).__name__ == "_DeadlockError":
        return True
    return isinstance(error, ImportError | AttributeError) and IMPORT_COLLISION in str(error)


async def _load_retrying_import_collisions(model: Model) -> bool:
    for attempt in range(IMPORT_RETRIES + 1):
        try:
            async with import_retries.of("retry") if attempt else contextlib.nullcontext():
                return await model.load()
        except Exception as error:
            if attempt == IMPORT_RETRIES or not collided_on_import(error):
                raise
            logger.warning(
                "model '%s': its load collided with another thread's first import of a module "
                "(%s); loading again (%d of %d)",
                model.name,
                error,
                attempt + 1,
                IMPORT_RETRIES,
            )
    raise AssertionError("unreachable")


def build_local(settings: ModelSettings) -> Model:
    return resolve_implementation(settings)(settings)


async def load_instance(model: Model) -> None:
    """Load one instance and let it serve: `load()` in the model's context,
    after the other loads of its runtime (`runtime_loads`), its batcher
    attached (a worker proxy's loads and batching run in its workers), and
    marked ready. Raises what `load()` raised; ModelLoadError when it
    returned False. The registry and the worker processes both load so."""
    local = not isinstance(model, RemoteModel)
    async with runtime_loads.of(type(model)) if local else contextlib.nullcontext():
        with model_context(model):
            loaded = await _load_retrying_import_collisions(model)
    if loaded is False:
        raise ModelLoadError("load() returned False")
    if local:
        batching.attach(model)
    model.ready = True


async def unload_instance(model: Model) -> None:
    """Stop an instance serving, run its queued requests, unload it; a
    failing `unload()` is logged, not raised."""
    model.ready = False
    await batching.detach(model)
    try:
        await model.unload()
    except Exception:
        logger.exception("model '%s' failed to unload cleanly", model.name)


class ModelRegistry:
    def __init__(
        self, build: Callable[[ModelSettings], Model] = build_local, settings: Settings | None = None
    ) -> None:
        # Makes the instance for a model's settings: the runtime itself, or a
        # proxy to the worker processes that hold it.
        self._build = build
        self.settings = settings or Settings()
        self._entries: dict[str, dict[str | None, ModelEntry]] = {}
        # name -> the model that serves requests without a version (ready ones only).
        self._defaults: dict[str, Model] = {}
        # Loads and unloads of one name, one at a time.
        self._names = KeyedLocks()
        # Whether any instance ever loaded has remote replicas (worker
        # processes, Ray): until then, transports need not look for one to
        # hand requests to.
        self.hosts_remote = False

    def get(self, name: str, version: str | None = None) -> Model:
        """The model that serves a request; 404 when unknown, 503 when not ready."""
        if version is None:
            model = self._defaults.get(name)
            if model is not None:
                return model
            versions = self._entries.get(name)
            if not versions:
                raise ModelNotFound(name)
            entry = max(versions.values(), key=lambda e: version_key(e.version))
        else:
            found = self._entries.get(name, {}).get(version)
            if found is None:
                raise ModelNotFound(name, version)
            if found.state == State.READY and found.model is not None:
                return found.model
            entry = found
        detail = f": {entry.reason}" if entry.reason else ""
        raise ModelNotReady(f"model '{name}' is not ready ({entry.state.value}{detail})")

    def entries(self) -> list[ModelEntry]:
        return [entry for versions in self._entries.values() for entry in versions.values()]

    def versions(self, name: str) -> list[ModelEntry]:
        return list(self._entries.get(name, {}).values())

    async def load(self, settings: ModelSettings, model: Model | None = None) -> bool:
        """Load (or reload) one model version; True when it is ready. During a
        reload the old instance keeps serving until the new one is ready. A
        failure is recorded on the entry, never raised: other models are
        unaffected."""
        async with self._names.of(settings.name):
            versions = self._entries.setdefault(settings.name, {})
            entry = versions.get(settings.version)
            if entry is None:
                entry = versions[settings.version] = ModelEntry(
                    settings.name, settings.version, State.LOADING
                )
            elif entry.state != State.READY:
                entry.state, entry.reason = State.LOADING, ""
            entry.timed_out = False
            try:
                with expiring(self._load_deadline(settings)):
                    new_model = model or self._build(await self._fetched(settings))
                    await load_instance(new_model)
                if isinstance(new_model, RemoteModel):
                    self.hosts_remote = True
            except Exception as error:
                reason = error.message if isinstance(error, CoreError) else f"{type(error).__name__}: {error}"
                logger.error("model '%s' failed to load: %s", settings.name, reason)
                entry.timed_out = isinstance(error, DeadlineExceeded)
                if entry.model is None:
                    entry.state, entry.reason = State.FAILED, reason
                else:
                    entry.reason = f"reload failed, previous instance still serving: {reason}"
                return False
            old_model, entry.model = entry.model, new_model
            entry.state, entry.reason = State.READY, ""
            self._update_default(settings.name)
            logger.info("model '%s' version %s is ready", settings.name, settings.version)
        if old_model is not None:
            await unload_instance(old_model)
        return True

    async def unload(self, name: str, version: str | None = None) -> None:
        if name not in self._entries:  # no lock, no state for names never loaded
            raise ModelNotFound(name, version)
        async with self._names.of(name):
            versions = self._entries.get(name)
            if not versions or (version is not None and version not in versions):
                raise ModelNotFound(name, version)
            targets = [versions[version]] if version is not None else list(versions.values())
            for entry in targets:
                entry.state = State.UNLOADING
            # Requests stop reaching them now, with a 503 that says why.
            self._update_default(name)
            for entry in targets:
                if entry.model is not None:
                    await unload_instance(entry.model)
                del versions[entry.version]
            if not versions:
                del self._entries[name]
            self._update_default(name)

    async def unload_all(self) -> None:
        for name in list(self._entries):
            await self.unload(name)

    async def _fetched(self, settings: ModelSettings) -> ModelSettings:
        """The settings with a remote `parameters.uri` fetched to a local path."""
        local, fetched = await localise(settings, self.settings)
        if fetched is not None:
            record_fetch(fetched)
        return local

    def _update_default(self, name: str) -> None:
        ready = [e for e in self._entries.get(name, {}).values() if e.state == State.READY and e.model]
        if ready:
            self._defaults[name] = max(ready, key=lambda e: version_key(e.version)).model  # type: ignore[assignment]
        else:
            self._defaults.pop(name, None)

    def _load_deadline(self, settings: ModelSettings) -> Deadline | None:
        seconds = load_timeout(settings, self.settings)
        if seconds <= 0:
            return None
        return Deadline.after(seconds, "its load_timeout", settings.name, verb="load")
