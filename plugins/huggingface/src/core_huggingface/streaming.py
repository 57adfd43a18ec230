"""What `generate` reports while it runs: each row's new tokens (for usage
counts and finish reasons), the text of a single generation as it is
decoded (for streaming), and a stop signal it checks at every token (a
client that went away, a deadline)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import torch
from transformers import StoppingCriteria


class TokenCounter:
    """Counts each row's new tokens, up to and including its first end token
    (EOS, or the pad token `generate` fills finished rows with). Works for
    batches, unlike transformers' text streamers: use it as `streamer=`."""

    def __init__(self, end_ids: Iterable[int]) -> None:
        self.end_ids = set(end_ids)
        self.counts: list[int] = []
        self.ended: list[bool] = []

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1 and not self.counts:
            # The first call: the prompts (or a decoder's start tokens), one row each.
            self.counts = [0] * value.shape[0]
            self.ended = [False] * value.shape[0]
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if not self.ended[row]:
                self.counts[row] += 1
                self.ended[row] = token in self.end_ids

    def end(self) -> None:
        pass


class TextChunks:
    """A single generation's text, handed to `emit` from generate's thread
    token by token. Incremental decoding, as text-generation-inference does
    it: the new tokens are decoded together with the few before them (a
    token's text can depend on its neighbours, a leading space for one), and
    what that adds to those few tokens' own text is sent, unless it ends
    inside a character (a byte-level token can carry part of one). Constant
    work per token. Counts the tokens too."""

    def __init__(self, tokenizer: Any, end_ids: Iterable[int], emit: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.counter = TokenCounter(end_ids)
        self._emit = emit
        self._tokens: list[int] = []
        self._prefix = 0  # start of the tokens decoded as context
        self._read = 0  # end of the tokens whose text was sent

    def put(self, value: torch.Tensor) -> None:
        prompt = not self.counter.counts
        self.counter.put(value)
        if prompt:
            return
        self._tokens.extend(value.reshape(-1).tolist())
        self._send(final=False)

    def end(self) -> None:
        self._send(final=True)

    def _send(self, final: bool) -> None:
        context = self._decode(self._tokens[self._prefix : self._read])
        text = self._decode(self._tokens[self._prefix :])
        if len(text) > len(context) and (final or not text.endswith("\ufffd")):
            self._emit(text[len(context) :])
            self._prefix, self._read = self._read, len(self._tokens)

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True)) if tokens else ""


class Cancelled(StoppingCriteria):
    """Stops generation at the next token once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        done = self.event.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class StopStrings:
    """Text cut at the first of the request's stop strings, which the
    answer never includes (OpenAI's `stop`). Fed chunk by chunk, it holds
    back the end that could still become a stop string."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self._pending = ""
        self.stopped = False

    def cut(self, text: str) -> tuple[str, bool]:
        """`text` up to its first stop string, and whether it had one."""
        positions = [text.find(stop) for stop in self.stops]
        found = [position for position in positions if position >= 0]
        return (text[: min(found)], True) if found else (text, False)

    def feed(self, chunk: str) -> str:
        """The part of the text so far that can be sent."""
        if self.stopped:
            return ""
        text, self.stopped = self.cut(self._pending + chunk)
        if self.stopped:
            self._pending = ""
            return text
        keep = max((self._overlap(text, stop) for stop in self.stops), default=0)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def flush(self) -> str:
        text, self._pending = ("" if self.stopped else self._pending), ""
        return text

    @staticmethod
    def _overlap(text: str, stop: str) -> int:
        """How long an end of `text` is a beginning of `stop`."""
        for size in range(min(len(text), len(stop) - 1), 0, -1):
            if stop.startswith(text[-size:]):
                return size
        return 0
