"""Where a batch's results go: JSONL of the responses, or CSV / Parquet of
the outputs, one line per input row."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from ..types import InferResponse
from .items import BatchError, BatchItem, BatchResult, _import, output_format


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
