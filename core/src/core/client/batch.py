"""Batch inference: a file of inputs through a model, concurrently, the
results written in input order (`core infer`, docs/cli.md).

    from core.client import batch

    summary = batch.run("rows.csv", "iris", url="http://127.0.0.1:8080", output="predictions.jsonl")

Three parts, each usable alone:

- `read_requests(path)`: the input file, read lazily, as `BatchItem`s (the
  request and its index): JSONL of OIP REST request bodies, one a line;
  CSV and Parquet as DataFrames of `batch_size` rows (one input per column,
  core's `pd` codec; or one 2-D tensor with `input_name`); `.npy` and `.npz`
  arrays cut along their first axis.
- `infer_in_order(client, model, items)`: an async client (REST or gRPC)
  sends the requests, at most `workers` at a time, and the results come back
  in input order; a slow request holds back at most `window` results, so
  memory stays bounded whatever the length of the input.
- `open_writer(path)`: JSONL of the responses (the OIP REST response JSON
  with the request's `index`; a failed request as `{"index", "error",
  "status"}`), or CSV / Parquet of the outputs, one line per input row.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import orjson
from pydantic import ValidationError

from ..types import Datatype, InferenceRequest, to_dtype
from .types import InferInput, InferRequest, InferResponse, RequestedOutput

INPUT_FORMATS = ("jsonl", "csv", "parquet", "npy", "npz")
OUTPUT_FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_SUFFIXES |= {".pq": "parquet", ".npy": "npy", ".npz": "npz"}


class BatchError(Exception):
    """A batch that cannot start (or go on): an unreadable input, a server
    that cannot be reached, a model that is not ready."""


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch. `request` is None when the input could not be
    made into a request; `error` then says why."""

    index: int  # the request's position in the input, from 0
    request: InferRequest | None
    rows: int = 1  # the first dimension of its first input
    first_row: int | None = None  # tabular and array inputs: the input row it starts at
    error: str | None = None


@dataclass
class BatchResult:
    item: BatchItem
    response: InferResponse | None = None  # when the request succeeded
    error: str | None = None
    status: int | None = None  # HTTP status (or its equivalent for a gRPC code)
    code: str | None = None  # gRPC status code name
    answered: bool = False  # False: no answer at all (connection refused, timeout)

    @property
    def ok(self) -> bool:
        return self.error is None


def input_format(path: str | Path, given: str | None = None) -> str:
    if given:
        return given
    if str(path) == "-":
        return "jsonl"
    found = _SUFFIXES.get(Path(path).suffix.lower())
    if found is None or found not in INPUT_FORMATS:
        raise BatchError(
            f"{path}: cannot tell the input format from its suffix; give it ({', '.join(INPUT_FORMATS)})"
        )
    return found


def output_format(path: str | Path | None, given: str | None = None) -> str:
    """`given`, else by `path`'s suffix: .csv, .parquet (or .pq), else JSONL."""
    if given:
        return given
    found = _SUFFIXES.get(Path(str(path or "-")).suffix.lower(), "jsonl")
    return found if found in OUTPUT_FORMATS else "jsonl"


# Reading.


def read_requests(
    path: str | Path,
    model_name: str = "",
    *,
    format: str | None = None,
    batch_size: int = 100,
    input_name: str | None = None,
    datatype: str | None = None,
    outputs: Iterable[str] = (),
    binary: bool = True,
) -> Iterator[BatchItem]:
    """The requests of an input file to `model_name`, read as they are asked
    for (`-`: JSONL from standard input). JSONL lines are requests as they
    are; tabular and array inputs become requests of `batch_size` rows, with
    `input_name` (default `input-0` for arrays) naming the one tensor,
    `datatype` (an OIP datatype such as FP32) the type numbers are sent as.
    `outputs` names the outputs asked for (default: the model's; a JSONL
    request that names its own keeps them). With `binary` the tensors are
    held as raw bytes (REST binary extension, gRPC raw contents), else as
    JSON data."""
    format = input_format(path, format)
    if batch_size < 1:
        raise BatchError("the batch size must be at least 1")
    encoding = _Encoding(model_name, binary, [RequestedOutput(name) for name in outputs], _dtype(datatype))
    if format == "jsonl":
        return _jsonl_requests(path, encoding)
    if format == "npy" or format == "npz":
        return _array_requests(path, format, batch_size, input_name, encoding)
    frames = _csv_frames(path, batch_size) if format == "csv" else _parquet_frames(path, batch_size)
    return _frame_requests(frames, input_name, encoding)


@dataclass(frozen=True)
class _Encoding:
    """How the readers build requests."""

    model_name: str
    binary: bool
    outputs: list[RequestedOutput]
    dtype: np.dtype | None  # numbers of tabular and array inputs are sent as

    def request(self, inputs: list[InferInput]) -> InferRequest:
        return InferRequest(self.model_name, inputs, request_outputs=self.outputs or None)

    def tensor(self, name: str, array: np.ndarray) -> InferInput:
        if self.dtype is not None and array.dtype.kind in "biuf":
            array = array.astype(self.dtype, copy=False)
        return InferInput.from_numpy(name, np.ascontiguousarray(array), binary_data=self.binary)


def _dtype(datatype: str | None) -> np.dtype | None:
    if datatype is None:
        return None
    try:
        found = Datatype(datatype.upper())
    except ValueError:
        raise BatchError(f"unknown datatype '{datatype}'") from None
    if found in (Datatype.BYTES, Datatype.BF16):
        raise BatchError(f"datatype {found.value}: only numeric datatypes can be given")
    return to_dtype(found)


def _open_input(path: str | Path) -> IO[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as error:
        raise BatchError(f"cannot read {path}: {error.strerror}") from None


def _jsonl_requests(path: str | Path, encoding: _Encoding) -> Iterator[BatchItem]:
    source = _open_input(path)
    with contextlib.nullcontext() if source is sys.stdin.buffer else source:
        index = 0
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue  # blank lines are not requests
            yield _jsonl_item(index, number, line, encoding)
            index += 1


def _jsonl_item(index: int, number: int, line: bytes, encoding: _Encoding) -> BatchItem:
    try:
        parsed = InferenceRequest.model_validate_json(line)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'request'}: {problem['msg']}"
            for problem in error.errors()
        )
        return BatchItem(index, None, error=f"line {number} is not an OIP request: {problems}")
    shape = parsed.inputs[0].shape if parsed.inputs else []
    rows = shape[0] if shape else 1
    request = InferRequest.from_inference_request(parsed, encoding.model_name)
    request.request_outputs = request.request_outputs or encoding.outputs or None
    if encoding.binary:
        try:
            for tensor in request.inputs:
                tensor.set_data_from_numpy(tensor.as_numpy(), binary_data=True)
        except ValueError as error:
            return BatchItem(index, None, rows, error=f"line {number}: {error}")
    return BatchItem(index, request, rows)


def _array_requests(
    path: str | Path, format: str, batch_size: int, input_name: str | None, encoding: _Encoding
) -> Iterator[BatchItem]:
    try:
        # .npy: mapped, so only the rows being sent are read; .npz: each array when first used.
        loaded = np.load(path, mmap_mode="r" if format == "npy" else None, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BatchError(f"cannot read {path}: {error}") from None
    with loaded if format == "npz" else contextlib.nullcontext():
        if format == "npy":
            arrays = {input_name or "input-0": loaded}
        elif input_name and len(loaded.files) == 1:
            arrays = {input_name: loaded[loaded.files[0]]}
        else:
            arrays = {name: loaded[name] for name in loaded.files}
        lengths = {name: (array.shape[0] if array.ndim else 0) for name, array in arrays.items()}
        if not arrays or len(set(lengths.values())) != 1 or 0 in lengths.values():
            raise BatchError(f"{path}: needs arrays of at least one dimension and one length, got {lengths}")
        total = next(iter(lengths.values()))
        for index, start in enumerate(range(0, total, batch_size)):
            stop = min(start + batch_size, total)
            inputs = [encoding.tensor(name, array[start:stop]) for name, array in arrays.items()]
            yield BatchItem(index, encoding.request(inputs), rows=stop - start, first_row=start)


def _csv_frames(path: str | Path, batch_size: int) -> Iterator[Any]:
    pandas = _import("pandas", "core[pandas]")
    try:
        reader = pandas.read_csv(path, chunksize=batch_size)
    except (OSError, ValueError) as error:
        raise BatchError(f"cannot read {path}: {error}") from None
    with reader:
        yield from _reading(path, reader)


def _parquet_frames(path: str | Path, batch_size: int) -> Iterator[Any]:
    parquet = _import("pyarrow.parquet", "core[parquet]")
    try:
        file = parquet.ParquetFile(path)
    except (OSError, ValueError) as error:
        raise BatchError(f"cannot read {path}: {error}") from None
    with file:
        for batch in _reading(path, file.iter_batches(batch_size=batch_size)):
            yield batch.to_pandas()


def _reading(path: str | Path, source: Iterable[Any]) -> Iterator[Any]:
    """`source`'s items, its read errors (a malformed line far into a file)
    as BatchError."""
    iterator = iter(source)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except (OSError, ValueError) as error:
            raise BatchError(f"cannot read {path}: {error}") from None
        yield item


def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BatchError(
            f"this input format needs {module.partition('.')[0]}: pip install '{extra}'"
        ) from None


def _frame_requests(
    frames: Iterator[Any], input_name: str | None, encoding: _Encoding
) -> Iterator[BatchItem]:
    """DataFrames as requests: one input per column (core's `pd` codec), or
    the one 2-D tensor `input_name`."""
    from ..codecs.pandas import PandasCodec

    start = 0
    for index, frame in enumerate(frames):
        rows = len(frame)
        try:
            if input_name:
                request = encoding.request([encoding.tensor(input_name, frame.to_numpy())])
            else:
                if encoding.dtype is not None:
                    numeric = frame.select_dtypes(include=["number", "bool"]).columns
                    frame = frame.astype(dict.fromkeys(numeric, encoding.dtype))
                request = InferRequest.encode(
                    encoding.model_name, frame, PandasCodec, binary_data=encoding.binary
                )
                request.request_outputs = encoding.outputs or None
        except (ValueError, TypeError) as error:
            yield BatchItem(index, None, rows, start, f"rows {start}-{start + rows - 1}: {error}")
        else:
            yield BatchItem(index, request, rows, start)
        start += rows


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
    from .errors import ClientError

    try:
        response = await client.infer(model_name, item.request, **options)
    except ClientError as error:
        return BatchResult(
            item, error=error.message, status=error.status, code=error.code, answered=error.status is not None
        )
    except Exception as error:
        return BatchResult(item, error=f"{type(error).__name__}: {error}")
    return BatchResult(item, response=response, answered=True)


# Writing.


def response_json(response: InferResponse) -> dict[str, Any]:
    """A response as the OIP REST response JSON, each output's data a flat
    list (raw outputs decoded; to be written with orjson's
    OPT_SERIALIZE_NUMPY). ValueError for BYTES that are not UTF-8."""
    content, _ = InferResponse(
        response.id,
        response.model_name,
        response.outputs,
        model_version=response.model_version,
        parameters=response.parameters,
    ).to_rest()
    assert isinstance(content, dict)  # no binary outputs were asked for
    return content


def error_json(result: BatchResult) -> dict[str, Any]:
    record: dict[str, Any] = {"index": result.item.index, **_rows(result.item)}
    record["error"] = result.error
    record["status"] = result.status
    if result.code:
        record["code"] = result.code
    return record


class Writer:
    """Where results go, in the order they are given."""

    def write(self, result: BatchResult) -> BatchResult:
        """Writes `result`; returns it as written: a response that cannot
        be written (its outputs do not fit the format) is written as an
        error, and returned as one."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def open_writer(path: str | Path | None, format: str | None = None) -> Writer:
    """A writer of `format` (default: from `path`'s suffix; JSONL for
    standard output, `path` None or `-`)."""
    format = output_format(path, format)
    if format == "parquet":
        if path is None or str(path) == "-":
            raise BatchError("Parquet output needs a file (--output)")
        return ParquetWriter(path)
    if path is None or str(path) == "-":
        stream: IO[bytes] = sys.stdout.buffer
    else:
        try:
            stream = open(path, "wb")  # noqa: SIM115  (the writer closes it)
        except OSError as error:
            raise BatchError(f"cannot write {path}: {error.strerror}") from None
    return JSONLWriter(stream) if format == "jsonl" else CSVWriter(stream)


class JSONLWriter(Writer):
    """One JSON record a line: the response with the request's `index` (and
    `rows`, the input rows [start, stop) it holds, for tabular and array
    inputs), or the error record."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, result: BatchResult) -> BatchResult:
        record: dict[str, Any] | None = None
        if result.response is not None:
            try:
                record = {"index": result.item.index, **_rows(result.item), **response_json(result.response)}
            except ValueError as error:
                result = BatchResult(result.item, error=f"cannot write the response: {error}", answered=True)
        if record is None:
            record = error_json(result)
        self._stream.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        return result

    def close(self) -> None:
        _close(self._stream)


def _rows(item: BatchItem) -> dict[str, Any]:
    return {} if item.first_row is None else {"rows": [item.first_row, item.first_row + item.rows]}


def _close(stream: IO[bytes]) -> None:
    if stream is sys.stdout.buffer:
        stream.flush()
    else:
        stream.close()


class _TableWriter(Writer):
    """The outputs as columns, one line per row of the outputs (a response's
    outputs must share their first dimension): an output of shape [N] or
    [N, 1] is a column of its name, [N, K] the columns NAME_0 ... NAME_K-1.
    The last column, `error`, is empty but on the rows of a failed request
    (as many as it had). The columns are the first successful response's;
    the failed rows before it are held (as counts and messages) until then."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None
        self._held: list[tuple[int, str]] = []

    def write(self, result: BatchResult) -> BatchResult:
        if result.response is not None:
            try:
                values = _output_columns(result.response)
                if self.columns is None:
                    self._start(values)
                    self.columns = list(values)
                    self._release()
                elif list(values) != self.columns:
                    raise ValueError(
                        f"outputs {list(values)} differ from the first response's {self.columns}"
                    )
                self._write_values(values)
                return result
            except (ValueError, TypeError) as error:
                result = BatchResult(result.item, error=f"cannot write the response: {error}", answered=True)
        failed = (max(result.item.rows, 1), result.error or "")
        if self.columns is None:
            self._held.append(failed)
        else:
            self._write_failed(*failed)
        return result

    def close(self) -> None:
        if self.columns is None:
            self.columns = []
        self._release()

    def _release(self) -> None:
        for failed in self._held:
            self._write_failed(*failed)
        self._held.clear()

    def _start(self, values: dict[str, np.ndarray]) -> None:
        """Learns what it needs of the first successful response's columns
        (raising ValueError or TypeError, before anything is written, when
        they cannot be written)."""

    def _write_values(self, values: dict[str, np.ndarray]) -> None:
        """Writes a successful response's rows, all or (raising ValueError
        or TypeError) none."""
        raise NotImplementedError

    def _write_failed(self, rows: int, error: str) -> None:
        raise NotImplementedError


def _output_columns(response: Any) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    rows = None
    for output in response.outputs:
        array = output.as_numpy()
        if array.ndim == 0 or (rows is not None and array.shape[0] != rows):
            shape = list(array.shape)
            raise ValueError(f"output '{output.name}' of shape {shape} has not one row per row of the others")
        rows = array.shape[0]
        if array.dtype == object:
            array = np.vectorize(_text, otypes=[object])(array) if array.size else array
        flat = array.reshape(rows, -1)
        if flat.shape[1] == 1:
            columns[output.name] = flat[:, 0]
        else:
            for position in range(flat.shape[1]):
                columns[f"{output.name}_{position}"] = flat[:, position]
    if not columns:
        raise ValueError("the response has no outputs")
    return columns


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class CSVWriter(_TableWriter):
    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream
        self._wrapper = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        self._csv = csv.writer(self._wrapper)
        self._header = False

    def _write_header(self) -> None:
        if not self._header:
            self._csv.writerow([*(self.columns or ()), "error"])
            self._header = True

    def _write_values(self, values: dict[str, np.ndarray]) -> None:
        self._write_header()
        columns = [column.tolist() for column in values.values()]
        self._csv.writerows([*row, ""] for row in zip(*columns, strict=True))

    def _write_failed(self, rows: int, error: str) -> None:
        self._write_header()
        line = [*([""] * len(self.columns or ())), error]
        self._csv.writerows(line for _ in range(rows))

    def close(self) -> None:
        super().close()
        self._write_header()
        self._wrapper.flush()
        self._wrapper.detach()
        _close(self._stream)


class ParquetWriter(_TableWriter):
    """Row groups of about `row_group` rows."""

    def __init__(self, path: str | Path, row_group: int = 65_536) -> None:
        super().__init__()
        self._pa = _import("pyarrow", "core[parquet]")
        self._parquet = _import("pyarrow.parquet", "core[parquet]")
        self._path = path
        self._row_group = row_group
        self._types: dict[str, Any] = {}
        self._pieces: dict[str, list[Any]] = {}
        self._errors: list[str | None] = []
        self._writer: Any = None

    def _start(self, values: dict[str, np.ndarray]) -> None:
        self._types = {name: self._pa.array(column).type for name, column in values.items()}
        self._pieces = {name: [] for name in values}

    def _write_values(self, values: dict[str, np.ndarray]) -> None:
        pieces = {name: self._pa.array(column).cast(self._types[name]) for name, column in values.items()}
        for name, piece in pieces.items():
            self._pieces[name].append(piece)
        self._add_errors([None] * len(next(iter(values.values()))))

    def _write_failed(self, rows: int, error: str) -> None:
        for name, pieces in self._pieces.items():
            pieces.append(self._pa.nulls(rows, type=self._types[name]))
        self._add_errors([error] * rows)

    def _add_errors(self, errors: list[str | None]) -> None:
        self._errors.extend(errors)
        if len(self._errors) >= self._row_group:
            self._flush()

    def _flush(self) -> None:
        pa = self._pa
        arrays = [pa.concat_arrays(pieces) for pieces in self._pieces.values()]
        arrays.append(pa.array(self._errors, type=pa.string()))
        table = pa.Table.from_arrays(arrays, names=[*self._pieces, "error"])
        if self._writer is None:
            self._writer = self._parquet.ParquetWriter(str(self._path), table.schema)
        self._writer.write_table(table)
        self._pieces = {name: [] for name in self._pieces}
        self._errors = []

    def close(self) -> None:
        super().close()
        if self._errors or self._writer is None:
            self._flush()
        self._writer.close()


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
    from . import AsyncGRPCClient, AsyncRESTClient

    if transport == "grpc":
        return AsyncGRPCClient(url, timeout=timeout, retries=retries, headers=headers)
    if transport != "rest":
        raise BatchError(f"unknown transport '{transport}': rest or grpc")
    if not url.startswith(("https://", "http://")):
        url = f"http://{url}"
    options: dict[str, Any] = {}
    if url.startswith("http://") and not _proxied(url):
        options["transport"] = KeepAliveTransport()
    return AsyncRESTClient(url, timeout=timeout, retries=retries, headers=headers, binary=binary, **options)


def _proxied(url: str) -> bool:
    """Whether httpx would send requests to `url` through a proxy (the
    *_PROXY variables): then its own transport goes, which knows proxies."""
    import urllib.request

    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    proxies = urllib.request.getproxies()
    return bool(proxies.get("http") or proxies.get("all")) and not urllib.request.proxy_bypass(host)


async def _check(client: Any, url: str, model_name: str, model_version: str | None, timeout: float) -> None:
    """Fails fast, before any request, when the server cannot be reached or
    the model is not ready."""
    from .errors import ClientError

    try:
        ready = await client.is_model_ready(model_name, model_version, timeout=timeout)
    except ClientError as error:
        raise BatchError(f"cannot reach the server at {url}: {error.message}") from None
    if not ready:
        version = f" version {model_version}" if model_version else ""
        raise BatchError(f"model '{model_name}'{version} is not ready (or not there) at {url}")


# A lean HTTP/1.1 transport.


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """A lean HTTP/1.1 transport for httpx over plain TCP: kept-alive
    connections, one request at a time each, responses parsed by httptools
    (uvicorn's parser: core depends on uvicorn[standard]). Per small request
    it costs the client a third of the CPU time of httpx's own connection
    pool, which is what bounds a batch of small requests. No TLS, no
    proxies, no HTTP/2: the batch runner uses it for plain http:// URLs."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":  # its answer has a Content-Length and no body: not parsed here
            raise httpx.UnsupportedProtocol("KeepAliveTransport does not send HEAD requests")
        timeouts = request.extensions.get("timeout", {})
        address = (request.url.host, request.url.port or 80)
        idle = self._idle.setdefault(address, [])
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
        head.extend(b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw)
        message = b"".join((*head, b"\r\n", await request.aread()))
        while True:
            connection = idle.pop() if idle else None
            if connection is None:
                connection = await _Connection.open(address, timeouts.get("connect"))
            elif connection.closed:
                continue
            try:
                status, headers, content = await connection.exchange(message, timeouts.get("read"))
            except httpx.ReadError:
                if connection.reused and not connection.answered:
                    continue  # the server had closed the idle connection: the request was not read
                raise
            if connection.keep_alive and not connection.closed:
                idle.append(connection)
            else:
                connection.close()
            return httpx.Response(status, headers=headers, content=content)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection of a KeepAliveTransport."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._parser_error = httptools.HttpParserError
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Answer] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self.closed = False
        self.reused = False  # it carried a request before the current one
        self.answered = False  # bytes of an answer to the current request came
        self.keep_alive = True

    @classmethod
    async def open(cls, address: tuple[str, int], timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(cls, *address), timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {address[0]}:{address[1]} timed out") from None
        except OSError as error:
            raise httpx.ConnectError(str(error)) from None
        return connection

    async def exchange(self, message: bytes, timeout: float | None) -> Answer:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.answered = False
        self._transport.write(message)
        try:
            return await asyncio.wait_for(self._answer, timeout)
        except asyncio.TimeoutError:
            self.close()
            raise httpx.ReadTimeout(f"no answer within {timeout} s") from None
        except asyncio.CancelledError:
            self.close()  # an answer may still come: the connection cannot carry another request
            raise
        finally:
            self.reused = True

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self._parser.feed_data(data)
        except self._parser_error as error:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(httpx.ReadError("the server closed the connection"))

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    # httptools' callbacks

    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((self._parser.get_status_code(), self._headers, b"".join(self._body)))
