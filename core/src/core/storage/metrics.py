"""A fetch's figures on the metrics endpoint: bytes, seconds, cache hits."""

from __future__ import annotations

from ..metrics.store import current_store
from .fetch import Fetched


def record_fetch(fetched: Fetched) -> None:
    """Record on the event loop (core's in-process families are not for threads)."""
    defaults = current_store().defaults
    if defaults is None:  # metrics off
        return
    if fetched.cache_hit:
        defaults.storage_cache_hits.labels(fetched.scheme).inc()
    elif fetched.downloaded:
        defaults.storage_bytes.labels(fetched.scheme).inc(fetched.downloaded)
        defaults.storage_seconds.labels(fetched.scheme).observe(fetched.seconds)
