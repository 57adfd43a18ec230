"""`core infer`: batch inference from the command line (docs/cli.md).

    core infer requests.jsonl --model iris --url http://127.0.0.1:8080 --output responses.jsonl
    core infer rows.csv --model iris --input-name input-0 --datatype FP32 -o predictions.csv

The work is core.client.batch's; this module reads the options, shows the
progress on standard error and says how the run went. Exit status: 0 when
every request succeeded, 1 when some failed (each has its error record), 2
when the run could not start (bad options, unreadable input, server not
reachable, model not ready)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

INPUT_FORMATS = ("jsonl", "csv", "parquet", "npy", "npz")
OUTPUT_FORMATS = ("jsonl", "csv", "parquet")


def add_parser(commands: Any) -> None:
    """Adds `infer` to the subcommands of `core`."""
    infer = commands.add_parser(
        "infer",
        help="send every request of a file to a model and write the responses, in input order",
        description="Batch inference: every request of INPUT (JSONL of OIP requests, one a line; or CSV, "
        "Parquet, .npy or .npz cut into requests of --batch-size rows) sent to a model, --workers at a "
        "time, and the responses written in input order: JSONL (each response with its request's "
        '"index"; a failed request as {"index", "error", "status"}), or CSV / Parquet of the outputs. '
        "Exit status: 0 all succeeded, 1 some failed, 2 could not start.",
    )
    infer.add_argument("input", help="the input file (its suffix gives its format); - reads JSONL from stdin")
    infer.add_argument("-m", "--model", "--model-name", dest="model", required=True, help="the model's name")
    infer.add_argument(
        "-u",
        "--url",
        help="the server: http(s)://HOST:PORT or HOST:PORT (default http://127.0.0.1:8080 for REST, "
        "127.0.0.1:8081 for gRPC)",
    )
    infer.add_argument("--model-version", help="the model version (default: the server's choice)")
    infer.add_argument(
        "-o",
        "--output",
        help="the output file: .jsonl, .csv or .parquet (default: JSONL on standard output)",
    )
    infer.add_argument("-t", "--transport", choices=["rest", "grpc"], default="rest", help="default rest")
    infer.add_argument(
        "-w", "--workers", type=_positive, default=8, help="requests in flight at once (default 8)"
    )
    infer.add_argument(
        "-b",
        "--batch-size",
        type=_positive,
        default=100,
        help="rows per request of CSV, Parquet and array inputs (default 100; a JSONL line is one request)",
    )
    infer.add_argument(
        "--binary",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="tensors as raw bytes: REST's binary tensor extension (for the outputs too), gRPC's raw "
        "contents; --no-binary: JSON lists, gRPC typed contents (default: binary)",
    )
    infer.add_argument(
        "--retries",
        type=_not_negative,
        default=3,
        help="retries of a request that did not reach the server, or was answered 503 / UNAVAILABLE, "
        "with backoff (default 3)",
    )
    infer.add_argument(
        "--timeout", type=_positive_float, default=60.0, help="seconds per request (default 60)"
    )
    infer.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar='"NAME: VALUE"',
        help="a header sent with every request (repeatable)",
    )
    infer.add_argument(
        "--input-name",
        help="CSV / Parquet: send the columns as this one 2-D tensor rather than one input per column "
        "(pandas codec); .npy: the tensor's name (default input-0)",
    )
    infer.add_argument(
        "--datatype",
        type=str.upper,
        help="CSV / Parquet / arrays: the OIP datatype numbers are sent as (FP32, INT64, ...; default: "
        "as read)",
    )
    infer.add_argument(
        "--outputs",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=[],
        metavar="NAME[,NAME...]",
        help="the outputs to ask for (default: the model's; a JSONL request naming its own keeps them)",
    )
    infer.add_argument("--input-format", choices=INPUT_FORMATS, help="default: from the input's suffix")
    infer.add_argument("--output-format", choices=OUTPUT_FORMATS, help="default: from the output's suffix")
    infer.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def parse_headers(values: list[str]) -> dict[str, str]:
    """`["Name: value", ...]` as a dict; ValueError naming a malformed one."""
    headers: dict[str, str] = {}
    for value in values:
        name, colon, content = value.partition(":")
        if not colon or not name.strip() or any(char.isspace() for char in name.strip()):
            raise ValueError(f"header {value!r} is not 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..client.batch import BatchError, BatchResult, count_rows, run_async

    try:
        headers = parse_headers(args.header)
    except ValueError as error:
        print(f"core infer: {error}", file=sys.stderr)
        return 2
    progress = tqdm(
        total=count_rows(args.input, args.input_format),
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        disable=args.quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
    failed = 0

    def on_result(result: BatchResult) -> None:
        nonlocal failed
        progress.update(result.item.rows)
        if not result.ok:
            failed += 1
            progress.set_postfix(failed=failed, refresh=False)

    options = {
        "output": args.output,
        "url": args.url,
        "transport": args.transport,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "input_format": args.input_format,
        "output_format": args.output_format,
        "input_name": args.input_name,
        "datatype": args.datatype,
        "outputs": args.outputs,
        "model_version": args.model_version,
        "binary": args.binary,
        "retries": args.retries,
        "timeout": args.timeout,
        "headers": headers,
        "on_result": on_result,
    }
    try:
        with progress:
            summary = asyncio.run(run_async(args.input, args.model, **options))
    except BatchError as error:
        print(f"core infer: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("core infer: interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"core infer: {summary}", file=sys.stderr)
    elif summary.stopped:
        print(f"core infer: stopped: {summary.stopped}", file=sys.stderr)
    return 0 if summary.failed == 0 and summary.stopped is None else 1
