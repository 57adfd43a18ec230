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
import contextlib
import contextvars
from types import TracebackType
from typing import Any

from .errors import BadRequest, DeadlineExceeded
from .settings import ModelSettings, Settings

# The request parameter carrying the client's timeout, in microseconds.
TIMEOUT_PARAMETER = "timeout"


class Deadline:
    """When a call must have ended (`at`, loop time), and how to say it did
    not: "model '<model>' did not <verb> within <source> of <seconds> s"
    (built only then: a deadline is made for every request).

    Also what enforces it: `with expiring(deadline): await ...` cancels the
    awaits inside at the deadline and raises DeadlineExceeded instead. No
    extra task, and no timer of its own (see `_Watch`). A deadline is
    entered once."""

    __slots__ = ("_expired", "_task", "_watch", "at", "model", "seconds", "source", "verb")

    def __init__(self, at: float, seconds: float, source: str, model: str = "", verb: str = "answer") -> None:
        self.at = at
        self.seconds = seconds
        self.source = source  # "its timeout", "the client's deadline"
        self.model = model
        self.verb = verb
        self._task: asyncio.Task[Any] | None = None
        self._watch: _Watch | None = None
        self._expired = False

    @classmethod
    def after(cls, seconds: float, source: str, model: str = "", verb: str = "answer") -> Deadline:
        return cls(asyncio.get_running_loop().time() + seconds, seconds, source, model, verb)

    def error(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"model '{self.model}' did not {self.verb} within {self.source} of {self.seconds:g} s"
        )

    def __enter__(self) -> Deadline:
        assert self._watch is None, "a deadline is entered once"
        self._task = asyncio.current_task()
        assert self._task is not None, "a deadline needs a running task"
        self._watch = _watch()
        self._watch.add(self)
        return self

    def expire(self) -> None:
        self._expired = True
        assert self._task is not None
        self._task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._watch is not None and self._task is not None
        self._watch.discard(self)
        if self._expired and exc_type is asyncio.CancelledError:
            if hasattr(self._task, "uncancel"):  # Python >= 3.11
                self._task.uncancel()
            raise self.error() from None


_NO_DEADLINE = contextlib.nullcontext()


def expiring(deadline: Deadline | None) -> contextlib.AbstractContextManager[Any]:
    """`with expiring(deadline): await ...`: the deadline, or no limit for None."""
    return _NO_DEADLINE if deadline is None else deadline


# The deadline the client gave the request being served (gRPC's), if any.
client_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "core_client_deadline", default=None
)


def set_client_timeout(seconds: float | None) -> None:
    """The client's deadline for the rest of the current task: `seconds` from now."""
    if seconds is not None:
        client_deadline.set(Deadline.after(max(seconds, 0.0), "the client's deadline"))


def model_timeout(model: ModelSettings, server: Settings) -> float:
    """Seconds a call to the model may take; 0: no limit."""
    return model.timeout if model.timeout is not None else server.model_timeout


def load_timeout(model: ModelSettings, server: Settings) -> float:
    return model.load_timeout if model.load_timeout is not None else server.model_load_timeout


def call_deadline(name: str, timeout: float, client: Deadline | None = None) -> Deadline | None:
    """The deadline of a call to model `name`: the earlier of `timeout`
    seconds from now (0: none) and the client's (`client`, else the current
    request's)."""
    client = client or client_deadline.get()
    if timeout > 0:
        at = asyncio.get_running_loop().time() + timeout
        if client is None or at <= client.at:
            return Deadline(at, timeout, "its timeout", name)
    elif client is None:
        return None
    return Deadline(client.at, client.seconds, client.source, name)


def parameter_timeout(parameters: Any) -> Deadline | None:
    """The client's deadline from a request's `timeout` parameter
    (microseconds); None without one. A value that is not a positive
    integer is a 400."""
    # An extra field: read from pydantic's dict (getattr of a missing one raises inside pydantic).
    extra = parameters.__pydantic_extra__ if parameters is not None else None
    value = extra.get(TIMEOUT_PARAMETER) if extra else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(
            f"request parameter '{TIMEOUT_PARAMETER}' must be a positive integer (microseconds), "
            f"got {str(value)[:40]!r}"
        )
    seconds = value / 1_000_000
    return Deadline.after(seconds, "the client's timeout")


class _Watch:
    """The deadlines in force on one event loop, behind one timer armed for
    the earliest of them: a timer per call (uvloop makes each a libuv
    handle, opened and closed) cost 12 % of the 1-row REST throughput.
    Calls that share a timeout end in the order they began, so a new one
    rarely moves the timer; when it fires, the calls past their deadline
    expire and it is armed again for the earliest left."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._watched: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, call: Deadline) -> None:
        self._watched.add(call)
        if self._timer is None or call.at < self._timer_at:
            self._arm(call.at)

    def discard(self, call: Deadline) -> None:
        self._watched.discard(call)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(at, self._check), at

    def _check(self) -> None:
        self._timer = None
        now = self.loop.time()
        earliest: float | None = None
        for call in list(self._watched):
            if call.at <= now:
                self._watched.discard(call)
                call.expire()
            elif earliest is None or call.at < earliest:
                earliest = call.at
        if earliest is not None:
            self._arm(earliest)


_current: _Watch | None = None


def _watch() -> _Watch:
    global _current
    loop = asyncio.get_running_loop()
    if _current is None or _current.loop is not loop:
        _current = _Watch(loop)
    return _current
