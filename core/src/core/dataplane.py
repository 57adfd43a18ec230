"""Protocol-neutral operations behind every transport: health, metadata,
inference and the model repository. Nothing here knows HTTP or gRPC."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from .deadlines import Deadline, call_deadline, expiring, model_timeout, parameter_timeout
from .errors import CoreError, InferenceError, ModelLoadError, ModelNotFound
from .model import Model
from .model_config import triton_model_config
from .model_context import current_model
from .model_hooks import HookTimes, hook_headers, postprocess, preprocess
from .registry import ModelRegistry, version_key
from .remote import RemoteModel
from .repository import FoundModel, find_models
from .settings import ModelSettings, Settings
from .types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    Parameters,
    RepositoryIndexResponse,
    RepositoryIndexResponseItem,
    State,
    to_ndarray,
)

logger = logging.getLogger(__name__)

EXTENSIONS = ["binary_tensor_data", "model_repository", "model_configuration", "statistics"]


# Generated request ids are UUID-shaped, as MLServer's: 64 random bits per
# process, then a counter. Unique across processes and restarts in practice,
# and cheaper per request than uuid4.
_ID_RANDOM = f"{random.getrandbits(64):016x}"
_ID_PREFIX = f"{_ID_RANDOM[:8]}-{_ID_RANDOM[8:12]}-{_ID_RANDOM[12:]}"
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    count = f"{next(_ID_COUNTER):016x}"
    return f"{_ID_PREFIX}-{count[:4]}-{count[4:]}"


class DataPlane:
    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.repository_root = Path(settings.model_repository_root)
        # Models loaded at start: the server is ready once all of them are.
        self._expected: set[str] = set()
        # Not ready before the server has started its workers and loaded its
        # models, nor once it is shutting down.
        self.started = False
        self.stopping = False
        # Whether calls into models get the models' own timeouts here; in a
        # worker the server process keeps them (and has the call cancelled),
        # and only the client's `timeout` parameter, read here, applies.
        self.model_deadlines = True

    # Start-up

    async def load_repository(self) -> None:
        """Load every model found on disk, side by side: one that loads
        slowly, or never (until its load deadline), holds up no other (but
        those of its own runtime: see `registry.runtime_loads`)."""
        found = find_models(self.repository_root)
        self._expected.update(item.name for item in found)
        await asyncio.gather(*(self._load_found(item) for item in found))

    async def add_model(self, model: Model) -> None:
        """Serve a `Model` instance built by the caller (programmatic start)."""
        self._expected.add(model.name)
        await self.registry.load(model.settings, model)

    async def _load_found(self, found: FoundModel) -> bool:
        if found.settings is None:
            return False
        return await self.registry.load(found.settings)

    # Health and metadata

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Every model loaded at start is ready, and takes requests (a model
        whose workers miss their heartbeat does not)."""
        if not self.started or self.stopping:
            return False
        for name in self._expected:
            versions = self.registry.versions(name)
            if not versions:
                return False
            for entry in versions:
                if entry.state == State.FAILED and entry.timed_out:
                    continue  # given up on: holds no other model back
                if entry.state != State.READY or entry.model is None or not entry.model.ready:
                    return False
        return True

    def metadata(self) -> MetadataServerResponse:
        return MetadataServerResponse(
            name=self.settings.server_name,
            version=self.settings.server_version,
            extensions=EXTENSIONS,
        )

    async def model_metadata(self, name: str, version: str | None = None) -> MetadataModelResponse:
        metadata = await self.registry.get(name, version).metadata()
        if not metadata.versions:
            loaded = [e.version for e in self.registry.versions(name) if e.version]
            metadata.versions = sorted(loaded, key=version_key)
        return metadata

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether the model serves requests; false too for a model of the
        repository that is not loaded (unloaded, or not loaded at start), as
        Triton answers; ModelNotFound for a name in neither."""
        try:
            return self.registry.get(name, version).ready
        except ModelNotFound:
            for found in self._on_disk(name):
                if version is None or found.settings is None or found.settings.version == version:
                    return False
            raise
        except CoreError:
            return False

    def model(self, name: str, version: str | None = None) -> Model:
        return self.registry.get(name, version)

    # Inference

    async def infer(
        self,
        payload: InferenceRequest,
        name: str,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InferenceResponse:
        model = self.registry.get(name, version)
        return await self._call(model, model.predict, payload, headers)

    async def explain(
        self,
        payload: InferenceRequest,
        name: str,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InferenceResponse:
        model = self.registry.get(name, version)
        return await self._call(model, model.explain, payload, headers)

    async def _call(
        self,
        model: Model,
        method: Callable[[InferenceRequest], Awaitable[InferenceResponse]],
        payload: InferenceRequest,
        headers: Mapping[str, str] | None,
    ) -> InferenceResponse:
        """`model.predict` or `model.explain` on a checked request, with the
        request id and headers set, and the model's name and version on the
        answer. Counted in the model's statistics, failures included."""
        statistics = model.statistics
        started = time.perf_counter_ns()
        token = current_model.set(model)
        predicted = payload
        try:
            _prepare(payload, headers)
            compute_started = time.perf_counter_ns()
            with expiring(self._deadline(model, payload)):
                # A class-level flag, set when the class is defined: models
                # without hooks pay one attribute lookup.
                if model.runs_preprocess or model.runs_postprocess:
                    predicted, response, compute_ns = await self._hooked(model, method, payload)
                else:
                    response = await method(payload)
                    compute_ns = time.perf_counter_ns() - compute_started
        except CoreError:
            statistics.failed(time.perf_counter_ns() - started)
            raise
        except Exception as error:
            statistics.failed(time.perf_counter_ns() - started)
            logger.exception("model '%s' raised in %s", model.name, method.__name__)
            raise InferenceError.raised_by(model.name, error) from None
        finally:
            current_model.reset(token)
        _stamp(response, payload, model)
        # Triton counts each item of a batch as one inference.
        inferences = 1
        if model.settings.max_batch_size > 0 and predicted.inputs and predicted.inputs[0].shape:
            inferences = predicted.inputs[0].shape[0]
        statistics.succeeded(time.perf_counter_ns() - started, compute_ns, inferences)
        return response

    async def _hooked(
        self,
        model: Model,
        method: Callable[[InferenceRequest], Awaitable[InferenceResponse]],
        payload: InferenceRequest,
    ) -> tuple[InferenceRequest, InferenceResponse, int]:
        """`method` between the model's hooks (those it has): the request it
        ran on, the response, and its own time in nanoseconds. With adaptive
        batching `method` is the batcher's: each request is preprocessed on
        its own before it joins a batch, and its part of the batch's response
        postprocessed on its own."""
        headers = hook_headers(payload)
        times = HookTimes()
        started = time.perf_counter()
        request = payload
        if model.runs_preprocess:
            request = await preprocess(model, payload, headers)
        times.predict_started = time.perf_counter()
        response = await method(request)
        times.predict_ended = time.perf_counter()
        if model.runs_postprocess:
            response = await postprocess(model, response, headers)
        times.preprocess = times.predict_started - started
        times.predict = times.predict_ended - times.predict_started
        times.postprocess = time.perf_counter() - times.predict_ended
        self._hooks_timed(model, method.__name__, times)
        return request, response, int(times.predict * 1e9)

    def _hooks_timed(self, model: Model, verb: str, times: HookTimes) -> None:
        """A call of `model` with hooks has succeeded ("predict", "explain",
        "predict_stream"); MeasuredDataPlane records its steps."""

    async def infer_stream(
        self,
        payload: InferenceRequest,
        name: str,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[InferenceResponse]:
        """The responses of `model.predict_stream` to the one request `payload`,
        prepared and stamped as `infer`'s. Nothing runs before the first
        `__anext__`, whose errors (unknown model, bad request, a model that
        implements neither streaming nor predict) come before any response;
        later ones end the stream. Any error is a CoreError. Counted as one
        inference when the stream ends. A model's `preprocess` runs on the
        request before its stream starts, its `postprocess` on each response
        (each within the deadline of a response)."""
        model = self.registry.get(name, version)
        statistics = model.statistics
        started = time.perf_counter_ns()
        try:
            _prepare(payload, headers)
            client = parameter_timeout(payload.parameters)
            timeout = self._model_timeout(model)
            times: HookTimes | None = None
            headers_for_hooks: dict[str, str] = {}
            request = payload
            if model.runs_preprocess or model.runs_postprocess:
                times, headers_for_hooks = HookTimes(), hook_headers(payload)
                if model.runs_preprocess:
                    preprocess_started = time.perf_counter()
                    token = current_model.set(model)
                    try:
                        with expiring(call_deadline(model.name, timeout, client)):
                            request = await preprocess(model, payload, headers_for_hooks)
                    finally:
                        current_model.reset(token)
                    times.preprocess = time.perf_counter() - preprocess_started
            responses = model.predict_stream(_single(request))
            try:
                while True:
                    # The model's code runs in its context; the consumer's, between
                    # responses, does not. Each response has the model's timeout,
                    # the whole stream the client's.
                    token = current_model.set(model)
                    try:
                        with expiring(call_deadline(model.name, timeout, client)):
                            response = await anext(responses)
                            if times is not None and model.runs_postprocess:
                                postprocess_started = time.perf_counter()
                                response = await postprocess(model, response, headers_for_hooks)
                                times.postprocess += time.perf_counter() - postprocess_started
                    except StopAsyncIteration:
                        break
                    finally:
                        current_model.reset(token)
                    _stamp(response, payload, model)
                    yield response
            finally:
                # A consumer that stops early (a client gone) closes the
                # model's stream now, not when it is garbage-collected: a
                # generation stops at once.
                close = getattr(responses, "aclose", None)  # an async generator's
                if close is not None:
                    await close()
        except CoreError:
            statistics.failed(time.perf_counter_ns() - started)
            raise
        except Exception as error:
            statistics.failed(time.perf_counter_ns() - started)
            logger.exception("model '%s' raised in predict_stream", model.name)
            raise InferenceError.raised_by(model.name, error) from None
        elapsed = time.perf_counter_ns() - started
        statistics.succeeded(elapsed, elapsed, 1)
        if times is not None:
            times.predict = max(0.0, elapsed / 1e9 - times.preprocess - times.postprocess)
            self._hooks_timed(model, "predict_stream", times)

    def model_names(self) -> list[str]:
        """The names of the models loaded or loading, whatever their state."""
        return sorted({entry.name for entry in self.registry.entries()})

    # Triton's model configuration and statistics extensions

    async def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.registry.get(name, version)
        return triton_model_config(model.settings, await model.metadata())

    async def model_statistics(
        self, name: str | None = None, version: str | None = None
    ) -> list[dict[str, Any]]:
        """Triton's `$model_stat` of each loaded version: of every model, of
        one model, or of one version; 404 when none is known."""
        entries = self.registry.entries() if name is None else self.registry.versions(name)
        if version is not None:
            entries = [entry for entry in entries if entry.version == version]
        if name is not None and not entries:
            raise ModelNotFound(name, version)
        entries.sort(key=lambda entry: (entry.name, version_key(entry.version)))
        reports = []
        for entry in entries:
            model = entry.model
            if model is None:
                continue
            statistics = (
                await model.collect_statistics() if isinstance(model, RemoteModel) else model.statistics
            )
            reports.append(statistics.report(entry.name, entry.version))
        return reports

    # Model repository extension

    def repository_index(self, ready: bool | None = None) -> RepositoryIndexResponse:
        items = [
            RepositoryIndexResponseItem(
                name=entry.name, version=entry.version, state=entry.state, reason=entry.reason
            )
            for entry in self.registry.entries()
        ]
        loaded = {entry.name for entry in self.registry.entries()}
        for found in find_models(self.repository_root):
            if found.name in loaded:
                continue
            if found.error is not None:
                items.append(
                    RepositoryIndexResponseItem(name=found.name, state=State.FAILED, reason=found.error)
                )
            else:
                items.append(RepositoryIndexResponseItem(name=found.name, state=State.UNAVAILABLE))
        if ready is not None:
            items = [item for item in items if (item.state == State.READY) == ready]
        return RepositoryIndexResponse(sorted(items, key=lambda i: (i.name, i.version or "")))

    async def repository_load(self, name: str) -> None:
        """(Re)load every version of a model from the repository folder."""
        found = self._on_disk(name)
        if not found:
            loaded = self.registry.versions(name)
            if not loaded:
                raise ModelNotFound(name)
            # Not on disk (given programmatically): reload the instances in place.
            for entry in loaded:
                if entry.model is not None:
                    settings = entry.model.settings
                    instance = None if isinstance(entry.model, RemoteModel) else type(entry.model)(settings)
                    await self.registry.load(settings, instance)
            return
        for item in found:
            if item.settings is None:
                raise ModelLoadError(f"model '{name}' cannot be loaded: {item.error}")
            if not await self._load_found(item):
                reasons = [e.reason for e in self.registry.versions(name) if e.reason]
                raise ModelLoadError(f"model '{name}' failed to load: {'; '.join(reasons)}")
        self._expected.add(name)

    async def repository_unload(self, name: str) -> None:
        await self.registry.unload(name)
        self._expected.discard(name)

    def model_settings(self, name: str, version: str | None = None) -> ModelSettings:
        return self.registry.get(name, version).settings

    def _on_disk(self, name: str) -> list[FoundModel]:
        """The versions of model `name` in the repository folder."""
        return [found for found in find_models(self.repository_root) if found.name == name]

    def _deadline(self, model: Model, payload: InferenceRequest) -> Deadline | None:
        """The earlier of the model's timeout and the client's (the request's
        `timeout` parameter, or the transport's deadline)."""
        client = parameter_timeout(payload.parameters)
        return call_deadline(model.name, self._model_timeout(model), client)

    def _model_timeout(self, model: Model) -> float:
        return model_timeout(model.settings, self.settings) if self.model_deadlines else 0.0


def _prepare(payload: InferenceRequest, headers: Mapping[str, str] | None) -> None:
    """Check the request's tensors (bad shapes and element types are a 400),
    give it an id when it has none, and put the transport headers in its
    parameters."""
    for request_input in payload.inputs:
        to_ndarray(request_input)
    if payload.id is None:
        payload.id = new_request_id()
    if headers:
        if payload.parameters is None:
            payload.parameters = Parameters(headers=dict(headers))
        else:
            payload.parameters.headers = dict(headers)


def _stamp(response: InferenceResponse, payload: InferenceRequest, model: Model) -> None:
    """The request's id and the model's name and version on a response."""
    # Assign only what differs: pydantic's __setattr__ is slow on this path.
    if response.id != payload.id:
        response.id = payload.id
    if response.model_name != model.name:
        response.model_name = model.name
    if response.model_version is None and model.version is not None:
        response.model_version = model.version


async def _single(payload: InferenceRequest) -> AsyncIterator[InferenceRequest]:
    yield payload
