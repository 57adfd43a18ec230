"""Batch inference: a file of inputs through a model, concurrently, the
results written in input order (`core infer`, docs/cli.md).

    from core.client import batch

    summary = batch.run("rows.csv", "iris", url="http://127.0.0.1:8080", output="predictions.jsonl")

Three parts, each usable alone (each in its module: readers, runner,
writers; items holds what they pass each other):

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

from ..http1 import KeepAliveTransport
from .items import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    BatchError,
    BatchItem,
    BatchResult,
    input_format,
    output_format,
)
from .readers import read_requests
from .runner import Summary, count_rows, default_url, infer_in_order, run, run_async, stop_after_unanswered
from .writers import CSVWriter, JSONLWriter, ParquetWriter, Writer, error_json, open_writer, response_json

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "BatchError",
    "BatchItem",
    "BatchResult",
    "CSVWriter",
    "JSONLWriter",
    "KeepAliveTransport",
    "ParquetWriter",
    "Summary",
    "Writer",
    "count_rows",
    "default_url",
    "error_json",
    "infer_in_order",
    "input_format",
    "open_writer",
    "output_format",
    "read_requests",
    "response_json",
    "run",
    "run_async",
    "stop_after_unanswered",
]
