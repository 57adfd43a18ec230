"""`HuggingFaceModel`: serves a transformers pipeline over V2, each task
with typed input and output tensors (see `tasks`), text-generation also
as a stream of text."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from pydantic import ValidationError
from transformers.pipelines import get_supported_tasks

from core.errors import BadRequest, ModelLoadError
from core.executor import run_in_thread
from core.model import Model
from core.settings import ModelSettings
from core.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    Parameters,
    ResponseOutput,
    model_parameters,
    to_dtype,
    to_ndarray,
)

from .loading import build_pipeline, check_task, infer_task, model_source, read_config, set_threads
from .settings import huggingface_settings
from .streaming import StopStrings
from .tasks import TASKS, Task, TensorSpec
from .tasks.base import decode_element
from .tasks.generation import TextGeneration

logger = logging.getLogger(__name__)

_END = object()

Decoded = tuple[dict[str, list[Any]], Any, list[TensorSpec]]


class HuggingFaceModel(Model):
    # Requests merge only with equal parameters: a pipeline call has one top_k,
    # one max_new_tokens, one temperature.
    batch_by_parameter_values = True

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.hf = huggingface_settings(settings)
        self.task: Task | None = None
        self._calls = asyncio.Semaphore(self.hf.concurrent_calls)

    # Loading

    async def load(self) -> bool:
        source = model_source(self.settings, self.hf)
        self.task = await run_in_thread(self._load, source)
        if not self.settings.inputs:
            self.inputs = [spec.metadata() for spec in self.task.inputs]
        if not self.settings.outputs:
            self.outputs = [self._output_metadata(spec) for spec in self.task.outputs]
        return True

    def _load(self, source: str) -> Task:
        set_threads(self.hf)
        config = read_config(self.name, source, self.hf)
        task = self.hf.task
        if task is None:
            task = infer_task(config)
            if task is None:
                raise ModelLoadError(
                    f"model '{self.name}': cannot tell the task of architectures "
                    f"{getattr(config, 'architectures', None)}: set parameters.extra.task"
                )
            logger.info("model '%s': task %s, inferred from %s", self.name, task, config.architectures)
        task = check_task(self.name, task, served_tasks())
        pipeline = build_pipeline(self.name, task, source, self.hf, config)
        return TASKS[task](pipeline, self.hf)

    def _output_metadata(self, spec: TensorSpec) -> Any:
        metadata = spec.metadata()
        dimension = getattr(self.task, "dimension", None)
        if spec.name == "embedding" and isinstance(dimension, int) and dimension > 0:
            metadata.shape = [-1, dimension]
        return metadata

    async def metadata(self) -> MetadataModelResponse:
        metadata = await super().metadata()
        if self.task is not None:
            parameters = metadata.parameters or Parameters()
            metadata.parameters = Parameters(**parameters.model_dump(exclude_none=True), task=self.task.name)
        return metadata

    async def unload(self) -> bool:
        self.task = None
        return True

    # Requests

    def check_request(self, payload: InferenceRequest) -> None:
        inputs, parameters, _ = self._decode(payload)
        self._task.check(inputs, parameters)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        task = self._task
        inputs, parameters, outputs = self._decode(payload)
        stop = threading.Event()
        try:
            async with self._calls:
                if isinstance(task, TextGeneration):
                    results = await run_in_thread(task.generate, inputs, parameters, stop)
                else:
                    results = await run_in_thread(_checked_run, task, inputs, parameters)
        finally:
            stop.set()  # cancelled (deadline, caller gone): generation ends at its next token
        return self._response(results, outputs)

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """text-generation: the text of one prompt as it is generated, then a
        last response with why it ended and the token counts. Other tasks:
        one response per request."""
        async for payload in payloads:
            task = self._task
            if not isinstance(task, TextGeneration):
                yield await self.predict(payload)
                continue
            inputs, parameters, outputs = self._decode(payload)
            if len(next(iter(inputs.values()), ())) != 1:
                raise BadRequest("streaming generates for one prompt at a time: send one row")
            async for response in self._stream(task, inputs, parameters, outputs):
                yield response

    async def _stream(
        self, task: TextGeneration, inputs: dict[str, list[Any]], parameters: Any, outputs: list[TensorSpec]
    ) -> AsyncIterator[InferenceResponse]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        stops = StopStrings(parameters.stops)

        def emit(text: str) -> None:  # in generate's thread
            loop.call_soon_threadsafe(chunks.put_nowait, text)

        generation = asyncio.ensure_future(run_in_thread(task.generate, inputs, parameters, stop, emit))
        generation.add_done_callback(lambda _: chunks.put_nowait(_END))
        names = {spec.name for spec in outputs}
        try:
            ended = False
            while not ended:
                # Every chunk that came while the last was sent, as one: a
                # slow reader gets fewer, longer chunks, not a backlog.
                parts = [await chunks.get()]
                while not chunks.empty():
                    parts.append(chunks.get_nowait())
                ended = parts[-1] is _END
                # A stop string ends generation by itself: generate has it too.
                text = stops.feed("".join(parts[:-1] if ended else parts))
                if text and "text_output" in names:
                    yield self._response({"text_output": [text]}, outputs, only_present=True)
            results = generation.result()
            results["text_output"] = [stops.flush()]
            yield self._response(results, outputs)
        finally:
            stop.set()
            if not generation.done():
                generation.cancel()

    @property
    def _task(self) -> Task:
        if self.task is None:
            raise ModelLoadError(f"model '{self.name}' is not loaded")
        return self.task

    def _decode(self, payload: InferenceRequest) -> Decoded:
        """The request's inputs by spec name (one value per row), its task
        parameters, and the outputs to answer; a BadRequest naming the
        problem otherwise."""
        task = self._task
        specs = {name: spec for spec in task.inputs for name in (spec.name, *spec.aliases)}
        inputs: dict[str, list[Any]] = {}
        for tensor in payload.inputs:
            spec = specs.get(tensor.name)
            if spec is None:
                raise BadRequest(
                    f"model '{self.name}' ({task.name}) has no input '{tensor.name}'; {_describe(task)}"
                )
            if spec.name in inputs:
                raise BadRequest(f"model '{self.name}': input '{spec.name}' is given twice")
            if tensor.datatype != spec.datatype:
                raise BadRequest(
                    f"model '{self.name}': input '{tensor.name}' must be {spec.datatype}, "
                    f"got {getattr(tensor.datatype, 'value', tensor.datatype)}"
                )
            inputs[spec.name] = [
                decode_element(spec, element) for element in to_ndarray(tensor).ravel().tolist()
            ]
        missing = [spec.name for spec in task.inputs if spec.required and spec.name not in inputs]
        if missing:
            raise BadRequest(
                f"model '{self.name}' ({task.name}) needs input '{missing[0]}'; {_describe(task)}"
            )
        rows = {len(inputs[spec.name]) for spec in task.inputs if spec.per_row and spec.name in inputs}
        if len(rows) > 1:
            raise BadRequest(f"model '{self.name}': inputs have different numbers of rows {sorted(rows)}")
        if rows == {0}:
            raise BadRequest(f"model '{self.name}': the request has no rows")
        return inputs, self._parameters(task, payload.parameters), self._requested_outputs(task, payload)

    def _parameters(self, task: Task, parameters: Parameters | None) -> Any:
        given = model_parameters(parameters)
        try:
            return task.parameters.model_validate(given)
        except ValidationError as error:
            raise BadRequest(
                f"model '{self.name}' ({task.name}): {_describe_parameters(task, error)}"
            ) from None

    def _requested_outputs(self, task: Task, payload: InferenceRequest) -> list[TensorSpec]:
        if not payload.outputs:
            return list(task.outputs)
        by_name = {spec.name: spec for spec in task.outputs}
        unknown = [output.name for output in payload.outputs if output.name not in by_name]
        if unknown:
            raise BadRequest(
                f"model '{self.name}' has no output '{unknown[0]}'; outputs: {', '.join(by_name)}"
            )
        return [by_name[output.name] for output in payload.outputs]

    def _response(
        self, results: dict[str, Any], outputs: list[TensorSpec], only_present: bool = False
    ) -> InferenceResponse:
        tensors = [
            _tensor(spec, results[spec.name])
            for spec in outputs
            if not (only_present and spec.name not in results)
        ]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=tensors)


def served_tasks() -> tuple[str, ...]:
    """The tasks this runtime serves with the installed transformers."""
    supported = set(get_supported_tasks())
    return tuple(name for name in TASKS if name in supported)


def _checked_run(task: Task, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
    task.check(inputs, parameters)
    return task.run(inputs, parameters)


def _tensor(spec: TensorSpec, value: Any) -> ResponseOutput:
    if spec.datatype == "BYTES":
        array = np.array(value, dtype=object)
        data: Any = [str(item) for item in array.ravel().tolist()]
    else:
        array = np.asarray(value, dtype=to_dtype(spec.datatype))
        data = array.ravel().tolist()
    return ResponseOutput(name=spec.name, shape=list(array.shape), datatype=spec.datatype, data=data)


def _describe(task: Task) -> str:
    described = [
        f"{spec.name} ({spec.datatype}{'' if spec.required else ', optional'})" for spec in task.inputs
    ]
    return f"inputs: {', '.join(described)}"


def _describe_parameters(task: Task, error: ValidationError) -> str:
    accepted = ", ".join(task.parameters.model_fields)
    problems = []
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or "parameters"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown parameter '{name}'")
        else:
            problems.append(f"parameter '{name}': {item['msg']}")
    return f"{'; '.join(problems)} (accepted: {accepted})"
