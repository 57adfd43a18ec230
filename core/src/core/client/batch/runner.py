"""Sending a batch: `infer_in_order` (results in input order, memory
bounded), and `run` / `run_async`, which make the client, check the model is
ready, and write each result as it comes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..http1 import KeepAliveTransport, is_direct
from .items import BatchError, BatchItem, BatchResult, _import, input_format
from .readers import read_requests
from .writers import open_writer

# Sending.


async def infer_in_order(
    client: Any,
    model_name: str,
    items: Iterable[BatchItem],
    *,
    workers: int = 8,
    window: int | None = None,
    **infer_options: Any,
) -> AsyncGenerator[BatchResult, None]:
    """The result of each item, in the items' order, from `client` (an
    AsyncRESTClient or AsyncGRPCClient) with `workers` requests in flight.
    Items are read as room frees up: at most `window` (default 4 x
    workers) are held at once, sent or waiting to be yielded. A failed
    request is a result with an error, never an exception. `infer_options`
    go to each `client.infer` call (model_version, headers, timeout...)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    window = max(window or 4 * workers, workers)
    in_flight = asyncio.Semaphore(workers)

    async def call(item: BatchItem) -> BatchResult:
        if item.request is None:
            return BatchResult(item, error=item.error)
        async with in_flight:
            return await _infer(client, model_name, item, infer_options)

    pending: deque[asyncio.Task[BatchResult]] = deque()
    try:
        for item in items:
            pending.append(asyncio.ensure_future(call(item)))
            while pending and (len(pending) >= window or pending[0].done()):
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _infer(client: Any, model_name: str, item: BatchItem, options: dict[str, Any]) -> BatchResult:
    from ..errors import ClientError

    try:
        response = await client.infer(model_name, item.request, **options)
    except ClientError as error:
        return BatchResult(
            item, error=error.message, status=error.status, code=error.code, answered=error.status is not None
        )
    except Exception as error:
        return BatchResult(item, error=f"{type(error).__name__}: {error}")
    return BatchResult(item, response=response, answered=True)


# Running.


@dataclass
class Summary:
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    rows: int = 0  # the rows of all requests, failed ones included
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped before the end of the input
    _unanswered: int = field(default=0, repr=False)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def add(self, result: BatchResult, unanswered_limit: int) -> bool:
        """Counts `result`; False when the run should stop there: the last
        `unanswered_limit` requests got no answer at all."""
        self.requests += 1
        self.rows += result.item.rows
        if result.ok:
            self.succeeded += 1
            self._unanswered = 0
            return True
        self.failed += 1
        if result.item.request is not None:
            self._unanswered = 0 if result.answered else self._unanswered + 1
        if self._unanswered >= unanswered_limit:
            self.stopped = f"the last {self._unanswered} requests got no answer ({result.error})"
            return False
        return True

    def __str__(self) -> str:
        text = (
            f"{self.succeeded} succeeded, {self.failed} failed, {self.rows} rows "
            f"in {self.seconds:.2f} s ({self.rows_per_second:,.0f} rows/s)"
        )
        return f"{text}; stopped: {self.stopped}" if self.stopped else text


def count_rows(path: str | Path, format: str | None = None) -> int | None:
    """The rows of a Parquet or .npy input, read from its header (None for
    the other formats, which would need a pass over the file)."""
    try:
        format = input_format(path, format)
        if format == "npy":
            return int(np.load(path, mmap_mode="r").shape[0])
        if format == "parquet":
            with _import("pyarrow.parquet", "core[parquet]").ParquetFile(path) as file:
                return int(file.metadata.num_rows)
    except (BatchError, OSError, ValueError, IndexError):
        pass
    return None


def default_url(transport: str) -> str:
    return "127.0.0.1:8081" if transport == "grpc" else "http://127.0.0.1:8080"


def run(input: str | Path, model_name: str, **options: Any) -> Summary:
    """`run_async` in a new event loop."""
    return asyncio.run(run_async(input, model_name, **options))


async def run_async(
    input: str | Path,
    model_name: str,
    *,
    output: str | Path | None = None,
    url: str | None = None,
    transport: str = "rest",
    workers: int = 8,
    window: int | None = None,
    batch_size: int = 100,
    input_format: str | None = None,
    output_format: str | None = None,
    input_name: str | None = None,
    datatype: str | None = None,
    outputs: Iterable[str] = (),
    model_version: str | None = None,
    binary: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
    on_result: Callable[[BatchResult], None] | None = None,
) -> Summary:
    """Every request of `input` (`read_requests`) sent to model `model_name`
    at `url` (default: 127.0.0.1, REST 8080 or gRPC 8081) by `workers`
    concurrent requests, and the results written in input order to `output`
    (`open_writer`; default standard output as JSONL). `on_result` is called
    with each result as it is written (a progress bar). Raises BatchError
    when the batch cannot start: an input that cannot be read, an output
    that cannot be written, a server that cannot be reached, a model that is
    not ready. The run stops early, with `Summary.stopped` saying why, when
    `stop_after_unanswered(workers)` requests in a row get no answer at all
    (the server went away)."""
    if output is not None and _same_file(input, output):
        raise BatchError(f"the output {output} is the input: writing it would destroy it")
    items = read_requests(
        input,
        model_name,
        format=input_format,
        batch_size=batch_size,
        input_name=input_name,
        datatype=datatype,
        outputs=outputs,
        binary=binary,
    )
    first = next(items, None)  # an unreadable input fails here, before any request
    url = url or default_url(transport)
    async with _client(url, transport, binary, retries, timeout, headers) as client:
        await _check(client, url, model_name, model_version, min(timeout, 10.0))
        writer = open_writer(output, output_format)
        summary = Summary()
        started = time.perf_counter()
        try:
            if first is not None:
                options = {"model_version": model_version} if model_version else {}
                results = infer_in_order(
                    client, model_name, _chain(first, items), workers=workers, window=window, **options
                )
                async with contextlib.aclosing(results):
                    async for result in results:
                        written = writer.write(result)
                        going = summary.add(written, stop_after_unanswered(workers))
                        if on_result is not None:
                            on_result(written)
                        if not going:
                            break
        finally:
            summary.seconds = time.perf_counter() - started
            writer.close()
    return summary


def _same_file(one: str | Path, other: str | Path) -> bool:
    try:
        return str(one) != "-" and str(other) != "-" and Path(one).samefile(other)
    except OSError:
        return False


def stop_after_unanswered(workers: int) -> int:
    """How many requests in a row may get no answer (connection refused,
    timed out) before a run stops: the server is gone."""
    return max(2 * workers, 10)


def _chain(first: BatchItem, rest: Iterator[BatchItem]) -> Iterator[BatchItem]:
    yield first
    yield from rest


def _client(
    url: str,
    transport: str,
    binary: bool,
    retries: int,
    timeout: float,
    headers: dict[str, str] | None,
) -> Any:
    from .. import AsyncGRPCClient, AsyncRESTClient

    if transport == "grpc":
        return AsyncGRPCClient(url, timeout=timeout, retries=retries, headers=headers)
    if transport != "rest":
        raise BatchError(f"unknown transport '{transport}': rest or grpc")
    if not url.startswith(("https://", "http://")):
        url = f"http://{url}"
    options: dict[str, Any] = {}
    if is_direct(url):
        options["transport"] = KeepAliveTransport()
    return AsyncRESTClient(url, timeout=timeout, retries=retries, headers=headers, binary=binary, **options)


async def _check(client: Any, url: str, model_name: str, model_version: str | None, timeout: float) -> None:
    """Fails fast, before any request, when the server cannot be reached or
    the model is not ready."""
    from ..errors import ClientError

    try:
        ready = await client.is_model_ready(model_name, model_version, timeout=timeout)
    except ClientError as error:
        raise BatchError(f"cannot reach the server at {url}: {error.message}") from None
    if not ready:
        version = f" version {model_version}" if model_version else ""
        raise BatchError(f"model '{model_name}'{version} is not ready (or not there) at {url}")
