"""When a failed call is tried again, and after how long.

A failure is one of three kinds:
- CONNECT: no connection was made, so the request was never sent;
- REJECTED: the server answered 503 (gRPC UNAVAILABLE): it is up but not
  taking the request now (a model still loading, a full queue), and did not
  run it;
- LOST: the request was sent and no answer came (connection reset, read
  timeout): it may have reached the model.
CONNECT and REJECTED are retried for every call. LOST is retried only for
calls that are safe to repeat (health, metadata, index, config, statistics),
and for `infer` only when the caller says it is (`idempotent=True`, or
`RetryPolicy(retry_infer=True)`), so a prediction with side effects (an
online detector's state, a billed call) is not made twice behind its back."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class Failure(Enum):
    CONNECT = "connect"
    REJECTED = "rejected"
    LOST = "lost"


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` further attempts after the first, `backoff` seconds before
    the first retry, growing by `multiplier` up to `max_backoff`, each delay
    with jitter (between half and all of it) so that clients retrying
    together spread out. A 503's `Retry-After` (in seconds) is honoured up
    to `max_backoff`."""

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    retry_infer: bool = False

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError(f"invalid retry policy: {self}")

    def should_retry(self, failure: Failure, attempt: int, idempotent: bool) -> bool:
        """Whether to try again after `attempt` (0 for the first) failed."""
        if attempt >= self.retries:
            return False
        return failure is not Failure.LOST or idempotent or self.retry_infer

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * self.multiplier**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


NO_RETRIES = RetryPolicy(retries=0)


def as_policy(retries: int | RetryPolicy | None) -> RetryPolicy:
    """A client's `retries` option: a count (the default policy with that
    many retries), a policy, or None / 0 for none."""
    if isinstance(retries, RetryPolicy):
        return retries
    return RetryPolicy(retries=retries) if retries else NO_RETRIES


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header given in seconds; None for an absent or HTTP-date one."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
