"""OpenAI's API under /openai/v1: models, completions, chat completions
(both streamed too, as server-sent events) and embeddings. Each call is
one V2 request to the model through the dataplane, which reaches it
wherever it runs, worker processes included. Every error, before or
during a stream, is answered in OpenAI's shape (`schema.OpenAIError`)."""

from __future__ import annotations

import base64
import functools
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from core.dataplane import DataPlane
from core.errors import CoreError
from core.model import Model
from core.rest.body import parse_json, read_body
from core.rest.responses import JSONResponse
from core.rest.streaming_routes import EVENT_STREAM, event
from core.types import InferenceRequest, InferenceResponse, Parameters, RequestInput, to_ndarray

from .schema import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    Envelope,
    GenerationRequest,
    OpenAIError,
    OpenAIRequest,
    chat_choice,
    chat_delta,
    completion_choice,
    model_card,
    usage,
)

COMPLETION_TASKS = ("text-generation", "text2text-generation")
CHAT_TASKS = ("text-generation",)  # a text2text model takes no chats
EMBEDDING_TASKS = ("feature-extraction",)
SERVED_TASKS = {*COMPLETION_TASKS, *EMBEDDING_TASKS}
DONE = b"data: [DONE]\n\n"

R = TypeVar("R", bound=OpenAIRequest)
# A choice of an answer, or of a stream's chunk: (index, text, finish reason) -> JSON.
Choice = Callable[[int, str, str | None], dict[str, Any]]


@dataclass
class Generated:
    """One row of a text-generation answer, or one chunk of a stream (text only)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ModelStream:
    """A model's responses to one streamed request, the first read ahead:
    errors before it (a bad request, a prompt too long) are answered with
    their status before any byte of the stream."""

    def __init__(self, responses: AsyncIterator[InferenceResponse]) -> None:
        self._responses = responses
        self._first: InferenceResponse | None = None

    async def start(self) -> None:
        self._first = await anext(self._responses, None)

    async def __aiter__(self) -> AsyncIterator[Generated]:
        if self._first is not None:
            first, self._first = self._first, None
            for row in _generated(first):
                yield row
        async for response in self._responses:
            for row in _generated(response):
                yield row

    async def aclose(self) -> None:
        # Ends the model's generation, which stops at its next token.
        aclose = getattr(self._responses, "aclose", None)
        if aclose is not None:
            await aclose()


class EventStream(StreamingResponse):
    """Server-sent events whose model streams are closed however the answer
    ends: in full, failed, or cut short by a client that went away (which
    can leave the body iterator suspended, and the model generating for
    nobody)."""

    def __init__(self, events: AsyncGenerator[bytes, None], streams: list[ModelStream]) -> None:
        super().__init__(events, media_type=EVENT_STREAM, headers={"cache-control": "no-cache"})
        self._events = events
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()
            for stream in self._streams:
                await stream.aclose()


class OpenAIRoutes:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self.created = int(time.time())
        # Each model instance's task, asked once (a reload makes a new instance).
        self._tasks: weakref.WeakKeyDictionary[Model, str] = weakref.WeakKeyDictionary()

    # Models

    async def list_models(self) -> Response:
        """The ready models that answer completions, chats or embeddings."""
        cards = []
        for name in self.dataplane.model_names():
            try:
                served = self.dataplane.model_ready(name) and await self._task(name) in SERVED_TASKS
            except CoreError:  # unloaded meanwhile
                continue
            if served:
                cards.append(model_card(name, self.created, self.dataplane.settings.server_name))
        return JSONResponse({"object": "list", "data": cards})

    async def retrieve_model(self, model: str) -> Response:
        if not self.dataplane.model_ready(model) or await self._task(model) not in SERVED_TASKS:
            raise OpenAIError(404, f"model '{model}' is not served here", "model", "model_not_found")
        return JSONResponse(model_card(model, self.created, self.dataplane.settings.server_name))

    # Generation

    async def completions(self, request: Request) -> Response:
        body = await self._read(request, CompletionRequest)
        await self._check_task(body.model, COMPLETION_TASKS, "completions")
        envelope = Envelope("text_completion", body.model)
        if not body.stream:
            payload = _generation_request(envelope, body, "text_inputs", body.prompt)
            return await self._answer(request, envelope, payload, completion_choice)
        # One stream per prompt, one after the other; each choice has its prompt's index.
        payloads = [_generation_request(envelope, body, "text_inputs", [prompt]) for prompt in body.prompt]
        return await self._stream(request, envelope, payloads, body.include_usage, completion_choice)

    async def chat_completions(self, request: Request) -> Response:
        body = await self._read(request, ChatCompletionRequest)
        await self._check_task(body.model, CHAT_TASKS, "chat completions")
        envelope = Envelope("chat.completion", body.model)
        payload = _generation_request(envelope, body, "messages", [orjson.dumps(body.chat()).decode()])
        if not body.stream:
            return await self._answer(request, envelope, payload, chat_choice)
        role = chat_delta(0, {"role": "assistant", "content": ""}, None)
        return await self._stream(request, envelope, [payload], body.include_usage, _chat_chunk, role)

    async def _answer(
        self, request: Request, envelope: Envelope, payload: InferenceRequest, choice: Choice
    ) -> Response:
        rows = _generated(await self.dataplane.infer(payload, envelope.model, None, request.headers))
        choices = [choice(index, row.text, row.finish_reason) for index, row in enumerate(rows)]
        counts = usage(sum(row.prompt_tokens for row in rows), sum(row.completion_tokens for row in rows))
        return JSONResponse(envelope.whole(choices, counts))

    async def _stream(
        self,
        request: Request,
        envelope: Envelope,
        payloads: list[InferenceRequest],
        include_usage: bool,
        choice: Choice,
        *preamble: dict[str, Any],
    ) -> Response:
        streams: list[ModelStream] = []

        async def open_stream(payload: InferenceRequest) -> ModelStream:
            stream = ModelStream(self.dataplane.infer_stream(payload, envelope.model, None, request.headers))
            streams.append(stream)
            await stream.start()
            return stream

        first = await open_stream(payloads[0])

        async def rows() -> AsyncIterator[tuple[int, Generated]]:
            for index, payload in enumerate(payloads):
                async for row in first if index == 0 else await open_stream(payload):
                    yield index, row

        return EventStream(_events(envelope, rows(), include_usage, choice, preamble), streams)

    # Embeddings

    async def embeddings(self, request: Request) -> Response:
        body = await self._read(request, EmbeddingRequest)
        await self._check_task(body.model, EMBEDDING_TASKS, "embeddings")
        payload = InferenceRequest(inputs=[_texts("inputs", body.input)])
        response = await self.dataplane.infer(payload, body.model, None, request.headers)
        outputs = {output.name: to_ndarray(output) for output in response.outputs}
        vectors = np.asarray(outputs["embedding"], dtype=np.float32).reshape(len(body.input), -1)
        if body.dimensions is not None and body.dimensions != vectors.shape[1]:
            raise OpenAIError(
                400,
                f"dimensions: model '{body.model}' makes vectors of {vectors.shape[1]} dimensions, "
                f"not {body.dimensions}",
                param="dimensions",
            )
        encoded = body.encoding_format == "base64"
        data = [
            # orjson writes a float32 array as it is.
            {"object": "embedding", "index": index, "embedding": _base64(vector) if encoded else vector}
            for index, vector in enumerate(vectors)
        ]
        tokens = int(np.sum(outputs["prompt_tokens"]))
        return JSONResponse({"object": "list", "data": data, "model": body.model, "usage": usage(tokens)})

    # Requests

    async def _read(self, request: Request, schema: type[R]) -> R:
        limit = self.dataplane.settings.max_request_body_size
        content = parse_json(await read_body(request.headers, request.receive, limit))
        if not isinstance(content, dict):
            raise OpenAIError(400, "the request body must be a JSON object")
        body = schema.model_validate(content)
        body.check()
        return body

    async def _task(self, name: str) -> str:
        model = self.dataplane.model(name)
        task = self._tasks.get(model)
        if task is None:
            metadata = await self.dataplane.model_metadata(name)
            extra = metadata.parameters.model_extra if metadata.parameters is not None else None
            task = str((extra or {}).get("task") or "")
            if task:  # none yet while a model loads: ask again next time
                self._tasks[model] = task
        return task

    async def _check_task(self, name: str, tasks: tuple[str, ...], endpoint: str) -> None:
        task = await self._task(name)
        if task not in tasks:
            what = f"a {task} model" if task else "not a Hugging Face pipeline"
            raise OpenAIError(
                400, f"model '{name}' is {what}: {endpoint} need a {' or '.join(tasks)} model", param="model"
            )


async def _events(
    envelope: Envelope,
    rows: AsyncIterator[tuple[int, Generated]],
    include_usage: bool,
    choice: Choice,
    preamble: Sequence[dict[str, Any]],
) -> AsyncGenerator[bytes, None]:
    """The chunks of a streamed completion: each piece of text as it comes,
    then each choice's finish reason, the usage when asked for, and [DONE].
    An error ends the stream with one `{"error"}` event."""
    prompt_tokens = completion_tokens = 0
    try:
        for first in preamble:
            yield event(envelope.chunk([first]))
        async for index, row in rows:
            if row.text:
                yield event(envelope.chunk([choice(index, row.text, None)]))
            if row.finish_reason is not None:
                yield event(envelope.chunk([choice(index, "", row.finish_reason)]))
                prompt_tokens += row.prompt_tokens
                completion_tokens += row.completion_tokens
        if include_usage:
            yield event(envelope.chunk([], usage(prompt_tokens, completion_tokens)))
        yield DONE
    except Exception as error:
        yield event(OpenAIError.of(error).body())


def _chat_chunk(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return chat_delta(index, {"content": text} if text else {}, finish_reason)


def _texts(name: str, texts: list[str]) -> RequestInput:
    # Chats are JSON documents: the `hf` content type.
    content_type = "hf" if name == "messages" else "str"
    parameters = Parameters(content_type=content_type)
    return RequestInput(name=name, shape=[len(texts)], datatype="BYTES", data=texts, parameters=parameters)


def _generation_request(
    envelope: Envelope, body: GenerationRequest, name: str, texts: list[str]
) -> InferenceRequest:
    return InferenceRequest(
        id=envelope.id, inputs=[_texts(name, texts)], parameters=Parameters(**body.parameters())
    )


def _generated(response: InferenceResponse) -> list[Generated]:
    """The rows of a text-generation response; a stream's chunks have text only."""
    outputs = {output.name: to_ndarray(output).ravel().tolist() for output in response.outputs}
    texts = [_text(value) for value in outputs.get("text_output", [])]
    if "finish_reason" not in outputs:
        return [Generated(text) for text in texts]
    columns = zip(
        texts, outputs["finish_reason"], outputs["prompt_tokens"], outputs["completion_tokens"], strict=True
    )
    return [
        Generated(text, _text(reason), int(prompt), int(completion))
        for text, reason, prompt, completion in columns
    ]


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _base64(vector: np.ndarray) -> str:
    # Little-endian float32, as OpenAI's clients decode it.
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def _answering_errors(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    @functools.wraps(handler)
    async def answer(*args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(*args, **kwargs)
        except Exception as error:
            failure = OpenAIError.of(error)
            return JSONResponse(failure.body(), status_code=failure.status)

    return answer


def openai_router(dataplane: DataPlane) -> APIRouter:
    routes = OpenAIRoutes(dataplane)
    router = APIRouter(prefix="/openai/v1", tags=["openai"])
    router.add_api_route("/models", _answering_errors(routes.list_models), methods=["GET"])
    # Hub-style names hold a slash (org/model).
    router.add_api_route("/models/{model:path}", _answering_errors(routes.retrieve_model), methods=["GET"])
    # Bodies are read here, not by FastAPI: its 422 answers are not OpenAI's.
    router.add_api_route("/completions", _answering_errors(routes.completions), methods=["POST"])
    router.add_api_route("/chat/completions", _answering_errors(routes.chat_completions), methods=["POST"])
    router.add_api_route("/embeddings", _answering_errors(routes.embeddings), methods=["POST"])
    return router
