#!/usr/bin/env python3
"""What metrics cost: the iris 1-row REST throughput of `core` with metrics
on (the default: REST, model and per-step metrics on every request) and
off (`metrics_endpoint` null), measured in one run. Target: on/off >= 0.95.

Same method as rest_throughput.py, whose helpers it uses (see
benchmarks/README.md): each server alone on 127.0.0.1, the same iris
artifact, wrk warm-up then `wrk -t2 -c16 -d10s --latency`, rounds in an
order that rotates, the median round per server, the ratio of the medians.
Runs under core's venv python with the `wrk` binary (and Linux's /proc:
it also reports the server's CPU time per request, read from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
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


def measure_with_cpu(
    server: Server,
    payload: rt.Payload,
    lua: Path,
    args: argparse.Namespace,
    seen: rt.Predictions,
    number: int,
) -> tuple[Result, float]:
    """rest_throughput's measure, plus the server's CPU time per request (in
    us, its workers' included) during the measured run: what a CPU-bound
    server's throughput is the inverse of, and much less moved by the
    machine's other load than req/s."""
    result = rt.measure(server, [payload], [lua], args, seen, number)[0]
    cpu_us = sum(result.busy.values()) / max(result.requests_per_s, 1e-9) * 1e6
    print(f"[round {number}] [{server.name}] {cpu_us:.0f} us CPU per request", flush=True)
    return result, cpu_us


async def asgi_cpu_per_request(
    model_dir: Path, body: bytes, batches: int, batch: int
) -> dict[str, list[float]]:
    """The same comparison without sockets or wrk: core's whole REST app
    (metrics middleware, fast infer path, dataplane, the iris model) called
    in this process, metrics on and off in alternating batches; the process's
    CPU time per request of each batch, in us. What the metrics add to a
    request, with none of the load generator's or the kernel's share."""
    from core import executor
    from core.observability import Observability
    from core.registry import ModelRegistry
    from core.rest.app import create_app
    from core.rest.fast_infer import FastInferApp
    from core.settings import Settings

    # Every framework call inline: whether a call goes to a thread adapts to
    # measured durations, and would differ between the two apps by chance.
    executor.configure(inline_budget=1.0)
    apps = {}
    for name, endpoint in (("metrics-on", "/metrics"), ("metrics-off", None)):
        settings = Settings(model_repository_root=str(model_dir), metrics_endpoint=endpoint)
        observability = Observability(settings)
        dataplane = observability.dataplane(ModelRegistry())
        await dataplane.load_repository()
        fastapi_app = create_app(settings, dataplane)
        inner = FastInferApp(fastapi_app, dataplane, settings.max_request_body_size)
        apps[name] = observability.rest_app(inner, fastapi_app)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/v2/models/{rt.MODEL_NAME}/infer",
        "headers": headers,
    }
    scope |= {"query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1"}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: object) -> None:
        pass

    cpu: dict[str, list[float]] = {name: [] for name in apps}
    for number in range(batches + 1):
        order = list(apps.items()) if number % 2 else list(apps.items())[::-1]
        for name, app in order:
            started = time.process_time()
            for _ in range(batch):
                await app(dict(scope), receive, send)
            if number:  # the first batch warms up
                cpu[name].append((time.process_time() - started) / batch * 1e6)
    return cpu


def on_off_ratio(results: list[Result]) -> float | None:
    by_server = {result.server: result.requests_per_s for result in results}
    if by_server.get("metrics-off"):
        return by_server.get("metrics-on", 0.0) / by_server["metrics-off"]
    return None


def parse_args() -> argparse.Namespace:
    parser = rt.method_parser(__doc__, rounds=5)
    parser.add_argument(
        "--asgi",
        action="store_true",
        help="instead of wrk: CPU per request of the REST app called in this process, on and off",
    )
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
    if args.asgi:
        body = rt.build_payloads([[5.1, 3.5, 1.4, 0.2]])[0].body
        cpu = asyncio.run(asgi_cpu_per_request(args.model_dir.resolve(), body, 40 * args.rounds, 300))
        medians = {name: statistics.median(values) for name, values in cpu.items()}
        for name, values in cpu.items():
            quartiles = ", ".join(f"{value:.0f}" for value in statistics.quantiles(values))
            print(f"{name}: {len(values)} batches, CPU per request quartiles {quartiles} us")
        on, off = medians["metrics-on"], medians["metrics-off"]
        print(f"medians: metrics-on {on:.1f} us, metrics-off {off:.1f} us; off/on {off / on:.3f}")
        return 0
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
        cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for round_number, server in rounds:
            result, cpu_us = measure_with_cpu(server, payloads[0], scripts[0], args, seen, round_number)
            results.append(result)
            cpu[server.name].append(cpu_us)

    round_ratios = []
    for number in sorted({result.round for result in results}):
        ratio = on_off_ratio([result for result in results if result.round == number])
        if ratio is not None:
            round_ratios.append(ratio)
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
    # Each round measures both back to back: its ratio sees the same load on
    # the machine, which the medians of each server over the run do not.
    median_round_ratio = statistics.median(round_ratios) if round_ratios else None
    if median_round_ratio is not None:
        print(f"median of the rounds' ratios: {median_round_ratio:.3f}")
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items() if values}
    cpu_ratio = None
    if len(cpu_medians) == 2:
        cpu_ratio = cpu_medians["metrics-off"] / cpu_medians["metrics-on"]
        print(
            f"server CPU per request (medians): metrics-on {cpu_medians['metrics-on']:.0f} us, "
            f"metrics-off {cpu_medians['metrics-off']:.0f} us; off/on {cpu_ratio:.3f}"
        )
    elapsed = time.monotonic() - started
    print(f"total time: {elapsed:.0f} s")
    if args.output:
        document = rt.run_facts(args, {str(python): rt.sklearn_version(python)}, load_before)
        document["method"]["parallel_workers"] = args.parallel_workers
        document |= {
            "results": [asdict(r) for r in results],
            "medians": [asdict(r) for r in summary],
            "on_off_ratio_of_medians": ratio,
            "median_of_round_ratios": median_round_ratio,
            "cpu_us_per_request": cpu,
            "cpu_off_on_ratio_of_medians": cpu_ratio,
            "failed_to_start": failures,
            "elapsed_s": round(elapsed, 1),
        }
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failures or not all(r.valid for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
