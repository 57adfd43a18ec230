"""What the parts of a batch pass each other: its items (the requests) and
results, the error that stops a batch, the input and output formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..types import InferRequest, InferResponse

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


def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BatchError(
            f"this input format needs {module.partition('.')[0]}: pip install '{extra}'"
        ) from None
