"""The model a call is running for: set by the dataplane (and the registry,
while a model loads) around every call into a model, read by what labels
things with the model: log records (`core.logs`), custom metrics
(`core.log`), spans.

A context variable, so it follows the call through `await`s and
`core.run_in_thread`, and concurrent requests for different models do not
mix up."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Model

current_model: contextvars.ContextVar[Model | None] = contextvars.ContextVar(
    "core_current_model", default=None
)


def model_labels() -> tuple[str, str]:
    """(name, version) of the model the current call runs for; empty strings
    outside any model call, and for a model without a version."""
    model = current_model.get()
    if model is None:
        return "", ""
    return model.name, model.version or ""


@contextlib.contextmanager
def model_context(model: Model) -> Iterator[None]:
    token = current_model.set(model)
    try:
        yield
    finally:
        current_model.reset(token)
