"""text-generation (prompts, or chats through the tokenizer's chat
template) and, where the installed transformers has it,
text2text-generation. One call generates for every row with the same
generation parameters (requests batch only with equal ones); a single
prompt can stream its text as it is decoded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field, model_validator
from transformers import StoppingCriteriaList

from core.errors import BadRequest

from ..streaming import Cancelled, StopStrings, TextChunks, TokenCounter
from .base import TEXT_ALIASES, Task, TaskParameters, TensorSpec

logger = logging.getLogger(__name__)

BYTES, INT64 = "BYTES", "INT64"
# transformers 5's text-generation default, where a model's generation config sets none.
DEFAULT_MAX_NEW_TOKENS = 256


class GenerationParameters(TaskParameters):
    max_new_tokens: int | None = Field(default=None, ge=1)
    # OpenAI's and Triton generate's name for max_new_tokens.
    max_tokens: int | None = Field(default=None, ge=1)
    min_new_tokens: int | None = Field(default=None, ge=0)
    # 0: greedy decoding; above 0: sampling at that temperature.
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    do_sample: bool | None = None
    repetition_penalty: float | None = Field(default=None, gt=0)
    # Generation ends at the first of these strings, which the answer leaves out.
    stop: str | list[str] | None = None
    # Prompt and answer together (transformers' default), or the answer only (this runtime's).
    return_full_text: bool = False
    # Sent by Triton's generate clients; the route decides whether to stream.
    stream: bool | None = None

    @model_validator(mode="after")
    def _one_length(self) -> GenerationParameters:
        if self.max_new_tokens is not None and self.max_tokens is not None:
            raise ValueError("give max_new_tokens or max_tokens, not both")
        if isinstance(self.stop, list) and len(self.stop) > 16:
            raise ValueError("stop: at most 16 strings")
        return self

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or ())

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.min_new_tokens is not None:
            kwargs["min_new_tokens"] = self.min_new_tokens
        if self.temperature == 0:
            kwargs["do_sample"] = False
        elif self.temperature is not None:
            kwargs["temperature"] = self.temperature
            kwargs["do_sample"] = True
        for name in ("top_p", "top_k", "repetition_penalty", "do_sample"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


class TextGeneration(Task):
    """Inputs: `text_inputs` (prompts; also under Triton's `text_input`) or
    `messages` (chats: one JSON list of {role, content} per element). Outputs
    per row: the generated text, why it ended ("stop" or "length"), and the
    prompt's and the answer's token counts."""

    name = "text-generation"
    inputs = (
        TensorSpec("text_inputs", BYTES, required=False, aliases=TEXT_ALIASES),
        TensorSpec("messages", BYTES, required=False, kind="json", content_type="hf"),
    )
    outputs = (
        TensorSpec("text_output", BYTES),
        TensorSpec("finish_reason", BYTES),
        TensorSpec("prompt_tokens", INT64),
        TensorSpec("completion_tokens", INT64),
    )
    parameters = GenerationParameters
    batch_by_parameter_values = True
    prompt_input = "text_inputs"

    def __init__(self, pipeline: Any, settings: Any) -> None:
        super().__init__(pipeline, settings)
        self.context = _context_length(pipeline)
        # The pipeline's own (transformers 4.4x and later: the model's, with
        # the pipeline's defaults), else the model's.
        generation = getattr(pipeline, "generation_config", None) or getattr(
            pipeline.model, "generation_config", None
        )
        self.default_max_new_tokens = getattr(generation, "max_new_tokens", None) or DEFAULT_MAX_NEW_TOKENS
        tokenizer = pipeline.tokenizer
        end_ids = _ids(getattr(generation, "eos_token_id", None)) | _ids(tokenizer.eos_token_id)
        self.end_ids = end_ids | _ids(tokenizer.pad_token_id)
        self.beams = int(getattr(generation, "num_beams", 1) or 1)

    # Inputs

    def prompts(self, inputs: dict[str, list[Any]]) -> list[Any]:
        """The pipeline's inputs: prompt strings, or chats (lists of messages)."""
        if ("messages" in inputs) == (self.prompt_input in inputs):
            raise BadRequest(f"send one of the inputs '{self.prompt_input}' (prompts) or 'messages' (chats)")
        if self.prompt_input in inputs:
            return inputs[self.prompt_input]
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise BadRequest("this model's tokenizer has no chat template: send prompts in 'text_inputs'")
        for index, chat in enumerate(inputs["messages"]):
            if not (isinstance(chat, list) and chat and all(_is_message(message) for message in chat)):
                raise BadRequest(
                    f"input 'messages' element {index}: must be a non-empty JSON list of "
                    '{"role": ..., "content": ...} objects'
                )
        return inputs["messages"]

    def prompt_tokens(self, prompt: Any) -> int:
        if isinstance(prompt, str):
            return len(self.tokenizer(prompt)["input_ids"])
        encoded = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return len(ids)

    def check(self, inputs: dict[str, list[Any]], parameters: Any) -> None:
        self.max_new_tokens([self.prompt_tokens(p) for p in self.prompts(inputs)], parameters)

    def max_new_tokens(self, prompt_tokens: list[int], parameters: Any) -> int:
        """The call's max_new_tokens: the request's, which must fit in the
        model's context after the longest prompt; else the default, cut to
        what the context leaves."""
        asked = parameters.max_new_tokens or parameters.max_tokens
        longest = max(prompt_tokens, default=0)
        if self.context is None:
            return asked or self.default_max_new_tokens
        if longest >= self.context or (asked is not None and longest + asked > self.context):
            wanted = f" plus max_new_tokens {asked}" if asked is not None else ""
            raise BadRequest(
                f"the prompt has {longest} tokens{wanted}: more than the model's context of "
                f"{self.context} tokens"
            )
        return asked or min(self.default_max_new_tokens, self.context - longest)

    # Calls

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        return self.generate(inputs, parameters, threading.Event())

    def generate(
        self,
        inputs: dict[str, list[Any]],
        parameters: Any,
        stop: threading.Event,
        emit: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Every row's answer. With `emit` (one row only), its text is handed
        over as it is decoded. Generation ends early once `stop` is set."""
        prompts = self.prompts(inputs)
        prompt_tokens = [self.prompt_tokens(prompt) for prompt in prompts]
        max_new_tokens = self.max_new_tokens(prompt_tokens, parameters)
        kwargs = parameters.generate_kwargs()
        # generate's streamers see tokens one at a time: no beam search with
        # them. A stream decodes without beams; a model whose generation
        # config searches beams runs its search when not streaming, and its
        # new tokens are counted from its answer.
        streamer: TextChunks | TokenCounter | None = None
        if emit is not None:
            streamer = TextChunks(self.tokenizer, self.end_ids, emit)
            kwargs["num_beams"] = 1
        elif self.beams <= 1:
            streamer = TokenCounter(self.end_ids)
        if streamer is not None:
            kwargs["streamer"] = streamer
        if parameters.stops:
            # generate's own stop strings (transformers 4's pipeline takes
            # only one stop_sequence, and only its first token).
            kwargs["stop_strings"] = parameters.stops
            kwargs["tokenizer"] = self.tokenizer
        results = self.pipeline(
            prompts,
            batch_size=len(prompts),
            max_new_tokens=max_new_tokens,
            stopping_criteria=StoppingCriteriaList([Cancelled(stop)]),
            **self.return_kwargs(parameters),
            **kwargs,
        )
        texts = [str((r[0] if isinstance(r, list) else r)["generated_text"]) for r in results]
        counted = streamer.counter if isinstance(streamer, TextChunks) else streamer
        counts = counted.counts if counted is not None else [self.count_tokens(text) for text in texts]
        if stop.is_set():
            logger.info("generation stopped after %s new tokens: the caller went away", counts)
        reasons = []
        for row, text in enumerate(texts):
            texts[row], stopped = StopStrings(parameters.stops).cut(text)
            reasons.append("length" if counts[row] >= max_new_tokens and not stopped else "stop")
        return {
            "text_output": texts,
            "finish_reason": reasons,
            "prompt_tokens": np.array(prompt_tokens, dtype=np.int64),
            "completion_tokens": np.array(counts, dtype=np.int64),
        }

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def return_kwargs(self, parameters: Any) -> dict[str, Any]:
        return {"return_full_text": parameters.return_full_text}


class Text2TextGeneration(TextGeneration):
    """An encoder-decoder's answer to each input (transformers 4 only)."""

    name = "text2text-generation"
    inputs = (TensorSpec("inputs", BYTES, aliases=TEXT_ALIASES[1:]),)
    prompt_input = "inputs"

    def prompts(self, inputs: dict[str, list[Any]]) -> list[Any]:
        return inputs["inputs"]

    def return_kwargs(self, parameters: Any) -> dict[str, Any]:
        return {}


def _is_message(message: Any) -> bool:
    return isinstance(message, dict) and isinstance(message.get("role"), str) and "content" in message


def _ids(value: Any) -> set[int]:
    if value is None:
        return set()
    return {int(item) for item in value} if isinstance(value, (list, tuple)) else {int(value)}


def _context_length(pipeline: Any) -> int | None:
    """How many tokens the model sees at most, prompt and answer together."""
    config = pipeline.model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(pipeline.tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 10**8 else None
