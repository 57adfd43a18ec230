"""Giving the memory of large requests back to the system.

A large request is received in many small pieces (HTTP/2 frames of 16 KiB
for gRPC), each a malloc below glibc's mmap threshold: once freed, glibc
keeps the pages for later mallocs instead of returning them, and the
process stays that much larger (three 200 MiB gRPC messages left the server
process holding 735 MB). After a request of at least `TRIM_ABOVE` bytes,
`release_after` has glibc return its free pages (`malloc_trim(0)`) a moment
later, once the request's buffers are freed: one trim for any number of
large requests in that moment. Elsewhere than glibc it does nothing."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable

# Requests smaller than this leave too little behind to be worth a trim
# (which walks the whole heap: about a millisecond per 100 MB of it).
TRIM_ABOVE = 16 * 1024 * 1024
# How long after a large request the trim runs: its buffers are freed once
# the response has been handed to the transport.
TRIM_DELAY = 0.2


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim  # glibc only: musl has none
    except (OSError, AttributeError):
        return None
    return trim


_trim = _malloc_trim()
_scheduled = False


def release_after(size: int) -> None:
    """Called (on the event loop) for a request of `size` bytes."""
    global _scheduled
    if size < TRIM_ABOVE or _trim is None or _scheduled:
        return
    _scheduled = True
    asyncio.get_running_loop().call_later(TRIM_DELAY, _release)


def _release() -> None:
    global _scheduled
    _scheduled = False
    # First the request's objects held only in reference cycles (an error's
    # traceback holds the frames that hold the request): an idle server
    # allocates too little for the cyclic collector to run by itself.
    gc.collect()
    if _trim is not None:
        _trim(0)
