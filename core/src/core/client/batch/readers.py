"""The input formats of a batch as `BatchItem`s: JSONL of OIP REST request
bodies, CSV and Parquet as DataFrames, .npy and .npz arrays."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import ValidationError

from ...types import Datatype, InferenceRequest, to_dtype
from ..types import InferInput, InferRequest, RequestedOutput
from .items import BatchError, BatchItem, _import, input_format


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


def _frame_requests(
    frames: Iterator[Any], input_name: str | None, encoding: _Encoding
) -> Iterator[BatchItem]:
    """DataFrames as requests: one input per column (core's `pd` codec), or
    the one 2-D tensor `input_name`."""
    from ...codecs.pandas import PandasCodec

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
