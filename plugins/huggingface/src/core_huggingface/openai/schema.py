"""OpenAI's request bodies as pydantic models, its error shape, and the
answers' JSON. OpenAI's API reference is the spec: a field this server
implements is typed and bounded; a field it does not implement is accepted
at its default ("off") value, which clients send freely, and refused with
a 400 naming it otherwise; a field OpenAI does not define is refused as
OpenAI refuses it."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from core.errors import CoreError, shorten

logger = logging.getLogger(__name__)


class OpenAIError(Exception):
    """An answer in OpenAI's error shape, with its HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    @property
    def type(self) -> str:
        return "server_error" if self.status >= 500 else "invalid_request_error"

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    @classmethod
    def of(cls, error: Exception) -> OpenAIError:
        """The answer to any error of a route: what the client got wrong, as
        it named it; the server's own failures without their details."""
        if isinstance(error, OpenAIError):
            return error
        if isinstance(error, ValidationError):
            return cls._invalid(error)
        if not isinstance(error, CoreError):
            logger.error("unhandled error in an OpenAI route", exc_info=error)
            return cls(500, "internal server error")
        status = error.status_code
        if status == 500:
            # An exception inside a model, or a model that failed to load: the
            # details (paths, framework messages) stay in the server log.
            logger.warning("OpenAI route answered 500: %s", error.message)
            return cls(500, "the model failed to answer; the server log has the details")
        if status == 404:
            return cls(404, error.message, param="model", code="model_not_found")
        return cls(status, error.message)

    @classmethod
    def _invalid(cls, error: ValidationError) -> OpenAIError:
        problem = error.errors(include_url=False)[0]
        param = _path(problem["loc"])
        message = f"{param}: {problem['msg']}" if param else problem["msg"]
        value = problem.get("input")
        if problem["type"] != "missing" and isinstance(value, (str, int, float, bool)):
            message += f" (got {shorten(repr(value))})"
        return cls(400, message, param=param or None)


def _path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as OpenAI's clients name fields: messages[0].content."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _texts(value: Any) -> Any:
    """A string or a non-empty list of strings, as a list. Token arrays are
    refused: the server tokenizes with the model's own tokenizer."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    if isinstance(value, list) and value and all(isinstance(item, (int, list)) for item in value):
        raise PydanticCustomError("tokens", "token arrays are not supported: send text")
    raise PydanticCustomError("texts", "must be a string or a non-empty list of strings")


def _stop(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return None if not value else [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value or None
    raise PydanticCustomError("stop", "must be a string or a list of strings")


def _content(value: Any) -> Any:
    """A message's content as one string: a list of text parts is joined
    with newlines (as vLLM does); null (an assistant's) is empty."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        texts = []
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                message = f"only text parts ({{'type': 'text', 'text': ...}}) are supported, not {kind!r}"
                raise PydanticCustomError("content", message)
            texts.append(part["text"])
        return "\n".join(texts)
    raise PydanticCustomError("content", "must be a string or a list of text parts")


Texts = Annotated[list[str], BeforeValidator(_texts)]
Stop = Annotated[list[str] | None, BeforeValidator(_stop)]
Content = Annotated[str, BeforeValidator(_content)]


# What every request may carry with no effect here (OpenAI's accounts and caches).
_IGNORED = ("user", "metadata", "service_tier", "prompt_cache_key", "safety_identifier")


class OpenAIRequest(BaseModel):
    """What every OpenAI request has. `optional`: the fields OpenAI defines
    that this server does not implement, each with the values it accepts
    (its "off" values, which clients send freely; None: any). Any other
    field is refused, as OpenAI refuses it."""

    model_config = ConfigDict(extra="allow")
    optional: ClassVar[dict[str, tuple[Any, ...] | None]] = dict.fromkeys(_IGNORED)

    model: str

    def check(self) -> None:
        for name, value in (self.model_extra or {}).items():
            if name not in self.optional:
                raise OpenAIError(400, f"Unrecognized request argument supplied: {name}", param=name)
            accepted = self.optional[name]
            if accepted is not None and value not in accepted:
                message = f"{name}: {shorten(repr(value))} is not supported by this server"
                raise OpenAIError(400, message, param=name)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool | None = False


class GenerationRequest(OpenAIRequest):
    """The sampling fields completions and chat completions share."""

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: Stop = None
    n: int | None = Field(default=1, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    # Not OpenAI's: vLLM's extensions, sent with the client's `extra_body`.
    top_k: int | None = Field(default=None, ge=0)
    repetition_penalty: float | None = Field(default=None, gt=0)
    min_tokens: int | None = Field(default=None, ge=0)

    optional = {
        **OpenAIRequest.optional,
        "presence_penalty": (None, 0),
        "frequency_penalty": (None, 0),
        "logit_bias": (None, {}),
    }

    def check(self) -> None:
        super().check()
        if self.n not in (None, 1):
            raise OpenAIError(400, "n: this server generates one choice per request; send n=1", param="n")
        if self.seed is not None and self.temperature != 0:
            raise OpenAIError(
                400,
                "seed: this server cannot seed sampling; for reproducible output send temperature 0",
                param="seed",
            )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def max_new_tokens(self) -> int | None:
        return self.max_tokens

    def parameters(self) -> dict[str, Any]:
        """The model's generation parameters (a V2 request's); those not
        given are the model's own defaults (its generation config)."""
        given = {
            "max_new_tokens": self.max_new_tokens(),
            "min_new_tokens": self.min_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "stop": self.stop,
        }
        return {name: value for name, value in given.items() if value is not None}


class CompletionRequest(GenerationRequest):
    prompt: Texts
    # OpenAI's default for completions (chat has none: the model's).
    max_tokens: int | None = Field(default=16, ge=1)

    optional = {
        **GenerationRequest.optional,
        "echo": (None, False),
        "logprobs": (None,),
        "suffix": (None, ""),
        "best_of": (None, 1),
    }


class ChatMessage(BaseModel):
    # Other fields (name, refusal, annotations...) are ignored: clients echo
    # back the assistant messages they were given, with every field.
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Content = ""
    tool_calls: Any = None
    function_call: Any = None
    audio: Any = None

    @field_validator("tool_calls", "function_call", "audio")
    @classmethod
    def _not_used(cls, value: Any) -> Any:
        if value:
            raise PydanticCustomError("unsupported", "not supported by this server")
        return value

    def as_dict(self) -> dict[str, str]:
        # Chat templates know "system"; "developer" is OpenAI's newer name for it.
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.content}


class ChatCompletionRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    optional = {
        **GenerationRequest.optional,
        "parallel_tool_calls": None,  # no effect without tools
        "logprobs": (None, False),
        "top_logprobs": (None, 0),
        "tools": (None, []),
        "tool_choice": (None, "none", "auto"),
        "functions": (None, []),
        "function_call": (None, "none", "auto"),
        "response_format": (None, {"type": "text"}),
        "modalities": (None, ["text"]),
        "store": (None, False),
        **dict.fromkeys(
            ("audio", "prediction", "reasoning_effort", "verbosity", "web_search_options"), (None,)
        ),
    }

    def max_new_tokens(self) -> int | None:
        # max_tokens is the older name (OpenAI deprecated it for chat).
        return self.max_completion_tokens or self.max_tokens

    def chat(self) -> list[dict[str, str]]:
        return [message.as_dict() for message in self.messages]


class EmbeddingRequest(OpenAIRequest):
    input: Texts
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(default=None, ge=1)


# Answers


def usage(prompt_tokens: int, completion_tokens: int | None = None) -> dict[str, int]:
    if completion_tokens is None:  # embeddings
        return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


def chat_choice(index: int, content: str, finish_reason: str | None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def chat_delta(index: int, delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def model_card(name: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": owned_by}


class Envelope:
    """What a completion answer, and each chunk of its stream, carries
    besides its choices."""

    def __init__(self, kind: Literal["text_completion", "chat.completion"], model: str) -> None:
        prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.kind = kind
        self.model = model
        self.created = int(time.time())

    def whole(self, choices: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
        return {**self._fields(self.kind), "choices": choices, "usage": usage}

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.kind == "chat.completion" else self.kind
        body = {**self._fields(kind), "choices": choices}
        if usage is not None:
            body["usage"] = usage
        return body

    def _fields(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}
