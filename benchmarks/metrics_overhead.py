#!/usr/bin/env python3
"""What metrics cost: the iris 1-row REST throughput of `core` with metrics
on (the default: REST, model and per-step metrics on every request) and
off (`metrics_endpoint` null), measured in one run. Target: on/off >= 0.95.

Same method as rest_throughput.py, whose helpers it uses (see
benchmarks/README.md): each server alone on 127.0.0.1, the same iris
artifact, wrk warm-up then `wrk -t2 -c16 -d10s --latency`, rounds in an
order that rotates, the median round per server, the ratio of the medians.
Runs under core's venv python with the `wrk` binary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import rest_throughput as rt
from rest_throughput import Result, Server

VARIANTS = {
    "metrics-on": {},
    "metrics-off": {"CORE_METRICS_ENDPOINT": ""},  # empty: null, metrics off
}


def variant_server(name: str, python: Path, model_dir: Path, folder: Path, workers: int) -> Server:
    server = rt.core_server(python, model_dir, folder)
    settings = {**VARIANTS[name], "CORE_PARALLEL_WORKERS": str(workers)}
    environment = ["env", *(f"{key}={value}" for key, value in settings.items())]
    return replace(server, name=name, cmd=environment + server.cmd)


def on_off_ratio(results: list[Result]) -> float | None:
    by_server = {result.server: result.requests_per_s for result in results}
    if by_server.get("metrics-off"):
        return by_server.get("metrics-on", 0.0) / by_server["metrics-off"]
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    rt.add_method_arguments(parser, rounds=5)
    parser.add_argument("--parallel-workers", type=int, default=0, help="core's worker processes")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    if shutil.which("wrk") is None:
        print("error: `wrk` not found; install it with: apt-get install -y wrk", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    if load_before > 0.5 * (os.cpu_count() or 1):
        print(f"warning: machine is busy (load average {load_before:.2f}): results will be noisy")
    python = Path(sys.executable)
    failures: list[str] = []
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        workdir = Path(tmp)
        core_dir, _artifact, iris = rt.prepare_model(args.model_dir.resolve(), workdir, [python])
        payloads = rt.build_payloads(iris)[:1]  # 1 row
        scripts = [rt.write_lua(payloads[0], workdir, 0)]

        def factory(name: str) -> Callable[[Path], Server]:
            return lambda folder: variant_server(name, python, core_dir, folder, args.parallel_workers)

        factories = {name: factory(name) for name in VARIANTS}
        seen: rt.Predictions = {}
        rounds = rt.server_rounds(
            list(VARIANTS), args.rounds, factories, workdir, args.ready_timeout, failures
        )
        for round_number, server in rounds:
            results += rt.measure(server, payloads, scripts, args, seen, round_number)

    for number in sorted({result.round for result in results}):
        ratio = on_off_ratio([result for result in results if result.round == number])
        if ratio is not None:
            print(f"round {number}: metrics-on/metrics-off {ratio:.3f}")
    summary = rt.medians(results)
    rows = [
        [
            r.server,
            f"{r.requests_per_s:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            "ok" if r.valid else "NO",
        ]
        for r in summary
    ]
    headers = ["server", "1-row req/s (median)", "p50 ms", "p99 ms", "valid"]
    print("\n" + rt.table(headers, rows, args.markdown))
    ratio = on_off_ratio(summary)
    if ratio is not None:
        print(f"\nmetrics-on/metrics-off of the medians: {ratio:.3f} (target >= 0.95)")
    elapsed = time.monotonic() - started
    print(f"total time: {elapsed:.0f} s")
    if args.output:
        document = rt.run_facts(args, {str(python): rt.sklearn_version(python)}, load_before)
        document["method"]["parallel_workers"] = args.parallel_workers
        document |= {
            "results": [asdict(r) for r in results],
            "medians": [asdict(r) for r in summary],
            "on_off_ratio_of_medians": ratio,
            "failed_to_start": failures,
            "elapsed_s": round(elapsed, 1),
        }
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failures or not all(r.valid for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
