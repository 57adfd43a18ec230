#!/usr/bin/env python3
"""Adaptive batching throughput: one model with a fixed cost per call, served
by core with and without batching, measured in the same run.

Fixed method (see benchmarks/README.md): the model runs one call at a time and
each call costs `--call-ms` whatever its rows, like a kernel launch on a device
it has to itself. 1-row FP32 OIP requests come from 64 connections
(`wrk -t2 -c64 -d10s`); the batched configuration has `max_batch_size` 64.
Each configuration runs alone on 127.0.0.1, rounds rotate, medians are
compared. Reuses the helpers of rest_throughput.py; needs `wrk` and core's venv.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from statistics import median
from typing import Any

import rest_throughput as rt
from rest_throughput import Payload, Predictions, Result, Server

MODEL_NAME = "fixed-cost"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
CONFIGURATIONS = ("batched", "unbatched")
ROW = [5.1, 3.5, 1.4, 0.2]

MODELS_PY = '''"""The model of benchmarks/batching_throughput.py."""

import asyncio

from core import Model
from core.types import InferenceRequest, InferenceResponse, ResponseOutput, to_ndarray


class FixedCost(Model):
    """y = x * 2, at a fixed cost per call (`parameters.extra.call_ms`)
    whatever the rows, one call at a time: a device the model has to itself,
    whose every call costs a launch. The wait leaves the event loop free."""

    async def load(self) -> bool:
        self._device = asyncio.Lock()
        self._cost = float(self.settings.parameters.extra["call_ms"]) / 1000
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = to_ndarray(payload.inputs[0])
        async with self._device:
            await asyncio.sleep(self._cost)
        y = ResponseOutput(name="y", shape=list(x.shape), datatype="FP32", data=x * 2)
        return InferenceResponse(model_name=self.name, outputs=[y])
'''


def write_model(folder: Path, args: argparse.Namespace, batched: bool) -> Path:
    folder.mkdir(parents=True)
    settings: dict[str, Any] = {
        "name": MODEL_NAME,
        "implementation": "models.FixedCost",
        "parameters": {"extra": {"call_ms": args.call_ms}},
    }
    if batched:
        settings |= {"max_batch_size": args.batch_size, "max_batch_time": args.batch_time}
    (folder / "model-settings.json").write_text(json.dumps(settings))
    (folder / "models.py").write_text(MODELS_PY)
    return folder


def one_row_payload() -> Payload:
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROW}
    return Payload("1-row FP32", 1, json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode())


def check(port: int, payload: Payload) -> tuple[str, list[object] | None]:
    """One request outside wrk: HTTP 200 and the row doubled."""
    try:
        status, body = rt.http("POST", port, INFER_PATH, payload.body, timeout=30)
    except OSError as exc:
        return f"request failed: {exc}", None
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}", None
    data = json.loads(body)["outputs"][0]["data"]
    # Flat or nested (row-major) alike: OIP allows both.
    while data and isinstance(data[0], list):
        data = [value for row in data for value in row]
    doubled = [round(value, 4) for value in data]
    expected = [round(2 * value, 4) for value in ROW]
    if doubled != expected:
        return f"expected {expected}, got {data}", doubled
    return "", doubled


def rows_per_call(port: int) -> float:
    """Rows per model execution over the whole start (Triton statistics)."""
    status, body = rt.http("GET", port, f"/v2/models/{MODEL_NAME}/stats")
    (stat,) = json.loads(body)["model_stats"] if status == 200 else [{}]
    executions = stat.get("execution_count", 0)
    return stat.get("inference_count", 0) / executions if executions else 0.0


def ratio(results: list[Result]) -> float | None:
    by_name = {r.server: r.requests_per_s for r in results}
    if by_name.get("unbatched") and "batched" in by_name:
        return by_name["batched"] / by_name["unbatched"]
    return None


def report(results: list[Result], batch_rows: dict[str, list[float]], markdown: bool) -> float | None:
    for number in sorted({r.round for r in results}):
        value = ratio([r for r in results if r.round == number])
        if value is not None:
            print(f"round {number}: batched/unbatched = {value:.2f}")
    summary = rt.medians(results)
    rows = [[r.server, *rt.result_cells(r), f"{median(batch_rows[r.server]):.1f}"] for r in summary]
    headers = ["configuration", *rt.RESULT_HEADERS, "rows/call (median)"]
    print("\nmedians:\n" + rt.table(headers, rows, markdown))
    value = ratio(summary)
    if value is not None:
        print(f"\nbatched/unbatched of the medians: {value:.2f}")
    return value


def parse_args() -> argparse.Namespace:
    parser = rt.method_parser(__doc__, connections=64)
    parser.add_argument("--call-ms", type=float, default=5.0, help="the model's cost per call (ms)")
    parser.add_argument("--batch-size", type=int, default=64, help="max_batch_size when batched")
    parser.add_argument("--batch-time", type=float, default=0.01, help="max_batch_time (s) when batched")
    parser.add_argument(
        "--core-python", type=Path, default=rt.REPO / ".venv" / "bin" / "python", help="python running core"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    if reason := rt.core_skip_reason(args.core_python):
        print(f"error: {reason}", file=sys.stderr)
        return 2
    load_before = rt.check_machine({"wrk": "wrk"})
    if load_before is None:
        return 2

    failures: list[str] = []
    results: list[Result] = []
    batch_rows: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    with tempfile.TemporaryDirectory(prefix="batching-bench-") as tmp:
        workdir = Path(tmp)
        folders = {name: write_model(workdir / name, args, name == "batched") for name in CONFIGURATIONS}
        payload = one_row_payload()
        script = rt.write_lua(payload, workdir, 0, path=INFER_PATH)

        def factory(name: str) -> Callable[[Path], Server]:
            return lambda folder: replace(rt.core_server(args.core_python, folders[name], folder), name=name)

        factories = {name: factory(name) for name in CONFIGURATIONS}
        seen: Predictions = {}
        rounds = rt.server_rounds(
            list(CONFIGURATIONS), args.rounds, factories, workdir, args.ready_timeout, failures
        )
        for round_number, server in rounds:
            results += rt.measure(server, [payload], [script], args, seen, round_number, check)
            rows = rows_per_call(server.port)
            batch_rows[server.name].append(rows)
            print(f"[round {round_number}] [{server.name}] rows per model call: {rows:.1f}", flush=True)

    value = report(results, batch_rows, args.markdown)
    elapsed = time.monotonic() - started
    print(f"\ntotal time: {elapsed:.0f} s")
    if args.output:
        document = rt.wrk_results_document(args, {}, load_before, results, failures, elapsed)
        document["method"] |= {
            "call_ms": args.call_ms,
            "max_batch_size": args.batch_size,
            "max_batch_time": args.batch_time,
        }
        document |= {"rows_per_call": batch_rows, "batched_over_unbatched": value}
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failures or not all(r.valid for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
