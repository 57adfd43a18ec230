"""Deadlines of calls into models: one mechanism for every transport, and
for both places a model runs (the server process and a worker).

A call's deadline is the earlier of the model's own (its `timeout`, else
the server's `model_timeout`) and the client's: the gRPC deadline, or the
OIP request parameter `timeout` (microseconds, as in Triton's schedule
policy). Each is a point on the event loop's clock. On expiry the call
fails with DeadlineExceeded (504, DEADLINE_EXCEEDED) naming the model and
the deadline."""

from __future__ import annotations

import asyncio
import contextvars
from types import TracebackType
from typing import Any

from .errors import BadRequest, DeadlineExceeded
from .settings import ModelSettings, Settings

# The request parameter carrying the client's timeout, in microseconds.
TIMEOUT_PARAMETER = "timeout"


class Deadline:
    """When a call must have ended (`at`, loop time), and how to say it did not."""

    __slots__ = ("action", "at", "seconds", "source")

    def __init__(self, at: float, seconds: float, action: str, source: str) -> None:
        self.at = at
        self.seconds = seconds
        self.action = action  # "model 'iris' did not answer"
        self.source = source  # "its timeout", "the client's deadline"

    @classmethod
    def after(cls, seconds: float, action: str, source: str) -> Deadline:
        return cls(asyncio.get_running_loop().time() + seconds, seconds, action, source)

    def error(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"{self.action} within {self.source} of {self.seconds:g} s")

    def remaining(self) -> float:
        return self.at - asyncio.get_running_loop().time()


# The deadline the client gave the request being served (gRPC's), if any.
client_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "core_client_deadline", default=None
)


def set_client_timeout(seconds: float | None) -> None:
    """The client's deadline for the rest of the current task: `seconds` from now."""
    if seconds is not None:
        client_deadline.set(Deadline.after(max(seconds, 0.0), "", "the client's deadline"))


def model_timeout(model: ModelSettings, server: Settings) -> float:
    """Seconds a call to the model may take; 0: no limit."""
    return model.timeout if model.timeout is not None else server.model_timeout


def load_timeout(model: ModelSettings, server: Settings) -> float:
    return model.load_timeout if model.load_timeout is not None else server.model_load_timeout


def call_deadline(name: str, timeout: float, client: Deadline | None = None) -> Deadline | None:
    """The deadline of a call to model `name`: the earlier of `timeout`
    seconds from now (0: none) and the client's (`client`, else the current
    request's)."""
    action = f"model '{name}' did not answer"
    client = client or client_deadline.get()
    own = Deadline.after(timeout, action, "its timeout") if timeout > 0 else None
    if client is not None and (own is None or client.at < own.at):
        return Deadline(client.at, client.seconds, action, client.source)
    return own


def parameter_timeout(parameters: Any) -> Deadline | None:
    """The client's deadline from a request's `timeout` parameter
    (microseconds); None without one. A value that is not a positive
    integer is a 400."""
    value = getattr(parameters, TIMEOUT_PARAMETER, None) if parameters is not None else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(
            f"request parameter '{TIMEOUT_PARAMETER}' must be a positive integer (microseconds), "
            f"got {str(value)[:40]!r}"
        )
    seconds = value / 1_000_000
    return Deadline.after(seconds, "", "the client's timeout")


class expiring:
    """`with expiring(deadline): await ...`: the awaits inside are cancelled
    at the deadline and DeadlineExceeded is raised instead; None: no limit.
    A timer on the loop, no extra task."""

    __slots__ = ("_deadline", "_expired", "_handle")

    def __init__(self, deadline: Deadline | None) -> None:
        self._deadline = deadline
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False

    def __enter__(self) -> expiring:
        if self._deadline is not None:
            task = asyncio.current_task()
            assert task is not None, "expiring() needs a running task"
            self._handle = asyncio.get_running_loop().call_at(self._deadline.at, self._expire, task)
        return self

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self._expired = True
        task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._expired and exc_type is asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            assert self._deadline is not None
            raise self._deadline.error() from None
