#!/usr/bin/env python3
"""Sequential infer calls per second: `core.client` against `tritonclient`
(Triton's Python client), both sync, over REST and gRPC, against one core
server, measured in one run, in one process.

Four cases: {REST, gRPC} x {1 row, 1000 rows} of FP32 iris features,
shape [N, 4], asking for both of the model's outputs (`predict` INT64 [N],
`predict_proba` FP64 [N, 3]). Both clients make the same request the same way:

- one client object each, created once, so one persistent connection each
  (httpx keep-alive for core.client's RESTClient, geventhttpclient's pool
  of 1 for tritonclient.http, one gRPC channel each);
- per call: an `InferInput("input-0", [N, 4], "FP32")` filled with
  `set_data_from_numpy(x)` (binary data: the binary tensor extension over
  REST, `raw_input_contents` over gRPC), the two outputs requested by name
  (REST: `binary_data=True` each, tritonclient's default), `infer`, then
  `as_numpy` of both outputs. tritonclient's defaults are these; core.client
  sends the same tensors and asks for the same binary outputs;
- calls one after the other, never two at once.

The server: `core start` (core.testing.ServerProcess) on 127.0.0.1 with free
ports, `--parallel-workers 0` by default (the model in the server process:
no relay to a worker, so the server's share of a call is as small as core
makes it). The model (`--model linear`, the default) is the iris
LogisticRegression trained here on scikit-learn's bundled data, served by a
`core.Model` that computes its `predict` and `predict_proba` with numpy
(`x @ coef.T + intercept`, softmax, argmax): the same answers as
scikit-learn, without its 100-200 us of input validation per call, so that
the server's time, which both clients wait for alike, dilutes the clients'
difference as little as possible. `--model sklearn` serves the same
artifact with core_sklearn.SKLearnModel instead (examples/iris).

Method (fixed): after a check that every client gets the same answers as
scikit-learn, each of `--rounds` (7) rounds runs, for each case, `--warmup`
(100) untimed calls of each client, then `--calls-1` (2000, 1 row) or
`--calls-1000` (1000, 1000 rows) timed calls of each, in `--blocks` (10)
blocks per client, the two clients' blocks alternating (core.client first in
odd rounds, tritonclient first in even ones): A B A B ..., so that the
machine's other load falls on both alike. Per client and case: calls/s (wall
clock over its blocks), the client process's CPU time per call (all its
threads: grpcio polls in threads of its own) and the server's (the process
that runs the model). The report gives every round, each client's median
calls/s per case, and the ratio core.client / tritonclient of the medians
(and the median of the rounds' ratios). Target: >= 1.0 in every case.

    .venv/bin/python benchmarks/client_latency.py --markdown --output /tmp/client-latency.json
    .venv/bin/python benchmarks/client_latency.py --profile rest-1   # where core.client's time goes

`--profile CASE[,CASE]` runs the rounds, then cProfile over `--calls-1`
(or `--calls-1000`) calls of core.client and of tritonclient in that case,
and prints both profiles. `--patch FILE` executes FILE (a Python file) in
this process before the clients are made: a way to measure a change to
core.client on a scratch copy (monkeypatch it in FILE) without editing it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import runpy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rest_throughput as rt

MODEL_NAME = "iris"
INPUT = "input-0"
OUTPUTS = ("predict", "predict_proba")
CLIENTS = ("core", "triton")
CLIENT_LABELS = {"core": "core.client", "triton": "tritonclient"}
TRANSPORTS = ("rest", "grpc")
ROWS = (1, 1000)

MODELS_PY = '''"""The model of benchmarks/client_latency.py: the iris LogisticRegression
(multinomial) as numpy arithmetic, with scikit-learn's answers."""

import numpy as np

from core import Model
from core.types import InferenceRequest, InferenceResponse, ResponseOutput, to_ndarray


class IrisLinear(Model):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        self._coef = np.asarray(extra["coef"], dtype=np.float64).T  # [4, 3]
        self._intercept = np.asarray(extra["intercept"], dtype=np.float64)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = to_ndarray(payload.inputs[0])
        scores = x.astype(np.float64) @ self._coef + self._intercept
        scores -= scores.max(axis=1, keepdims=True)
        proba = np.exp(scores)
        proba /= proba.sum(axis=1, keepdims=True)
        rows = x.shape[0]
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="predict", shape=[rows], datatype="INT64",
                               data=scores.argmax(axis=1).astype(np.int64)),
                ResponseOutput(name="predict_proba", shape=[rows, 3], datatype="FP64", data=proba),
            ],
        )
'''


@dataclass
class Measurement:
    round: int
    transport: str
    rows: int
    client: str
    calls: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds

    @property
    def client_cpu_us(self) -> float:
        return 1e6 * self.client_cpu_s / self.calls

    @property
    def server_cpu_us(self) -> float:
        return 1e6 * self.server_cpu_s / self.calls


# The model


def train(folder: Path, kind: str) -> tuple[Any, Path]:
    """The iris LogisticRegression (as examples/iris/train.py) and a model
    folder serving it: numpy arithmetic (`linear`) or core_sklearn."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(features, labels)
    folder.mkdir(parents=True)
    tensors = {
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ],
    }
    if kind == "linear":
        settings = {
            "name": MODEL_NAME,
            "implementation": "models.IrisLinear",
            "parameters": {
                "extra": {"coef": estimator.coef_.tolist(), "intercept": estimator.intercept_.tolist()}
            },
            **tensors,
        }
        (folder / "models.py").write_text(MODELS_PY)
    else:
        joblib.dump(estimator, folder / "model.joblib")
        settings = {
            "name": MODEL_NAME,
            "implementation": "core_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
            **tensors,
        }
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return estimator, folder


def features(rows: int) -> np.ndarray:
    """`rows` iris rows (cycled), FP32 [rows, 4]."""
    from sklearn.datasets import load_iris

    iris = load_iris().data.astype(np.float32)
    return np.ascontiguousarray(np.resize(iris, (rows, 4)))


# The clients: one call each = build the input, infer, read both outputs.

Call = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Clients:
    def __init__(self, http_address: str, grpc_address: str) -> None:
        import tritonclient.grpc as triton_grpc
        import tritonclient.http as triton_http

        from core import client as core_client

        self.core_rest = core_client.RESTClient(f"http://{http_address}")
        self.core_grpc = core_client.GRPCClient(grpc_address)
        self.triton_rest = triton_http.InferenceServerClient(http_address, concurrency=1)
        self.triton_grpc = triton_grpc.InferenceServerClient(grpc_address)
        core_outputs = [core_client.RequestedOutput(name, binary_data=True) for name in OUTPUTS]
        rest_outputs = [triton_http.InferRequestedOutput(name, binary_data=True) for name in OUTPUTS]
        grpc_outputs = [triton_grpc.InferRequestedOutput(name) for name in OUTPUTS]

        def core_call(client: Any) -> Call:
            InferInput = core_client.InferInput

            def call(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                tensor = InferInput(INPUT, list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)
                result = client.infer(MODEL_NAME, [tensor], outputs=core_outputs)
                return result.as_numpy("predict"), result.as_numpy("predict_proba")

            return call

        def triton_call(client: Any, module: Any, outputs: list[Any]) -> Call:
            InferInput = module.InferInput

            def call(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                tensor = InferInput(INPUT, list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)
                result = client.infer(MODEL_NAME, [tensor], outputs=outputs)
                return result.as_numpy("predict"), result.as_numpy("predict_proba")

            return call

        self.calls: dict[tuple[str, str], Call] = {
            ("core", "rest"): core_call(self.core_rest),
            ("core", "grpc"): core_call(self.core_grpc),
            ("triton", "rest"): triton_call(self.triton_rest, triton_http, rest_outputs),
            ("triton", "grpc"): triton_call(self.triton_grpc, triton_grpc, grpc_outputs),
        }

    def close(self) -> None:
        for client in (self.core_rest, self.core_grpc, self.triton_rest, self.triton_grpc):
            client.close()


def check(answer: tuple[np.ndarray, np.ndarray], estimator: Any, x: np.ndarray, what: str) -> None:
    predict, proba = answer
    expected = estimator.predict(x)
    if predict.shape != (len(x),) or not np.array_equal(predict, expected):
        raise SystemExit(f"{what}: predict differs from scikit-learn's")
    if proba.shape != (len(x), 3) or not np.allclose(proba, estimator.predict_proba(x), atol=1e-6):
        raise SystemExit(f"{what}: predict_proba differs from scikit-learn's")


def measure(
    calls: dict[str, Call],
    order: tuple[str, ...],
    x: np.ndarray,
    count: int,
    blocks: int,
    warmup: int,
    server_pid: int,
) -> dict[str, tuple[float, float, float, tuple[np.ndarray, np.ndarray]]]:
    """`count` calls of each client in `blocks` blocks, the clients' blocks
    alternating (A B A B ...; `order` says which goes first), after `warmup`
    calls of each. Per client: wall seconds, client CPU seconds and server
    CPU seconds over its blocks, and its last answer."""
    for client in order:
        for _ in range(warmup):
            calls[client](x)
    totals = {client: [0.0, 0.0, 0.0] for client in order}
    answers = {}
    sizes = [count // blocks + (1 if block < count % blocks else 0) for block in range(blocks)]
    for size in sizes:
        for client in order:
            call = calls[client]
            server = rt.cpu_seconds(server_pid)
            cpu = time.process_time()
            started = time.perf_counter()
            for _ in range(size - 1):
                call(x)
            answers[client] = call(x)
            seconds = time.perf_counter() - started
            total = totals[client]
            total[0] += seconds
            total[1] += time.process_time() - cpu
            total[2] += rt.cpu_seconds(server_pid) - server
    return {client: (*totals[client], answers[client]) for client in order}  # type: ignore[misc]


def server_cpu_pid(server: Any) -> int:
    """The process that runs the model: the server itself in process, else
    its (first) worker."""
    workers = [pid for pid, role in rt.processes(server.process.pid).items() if role.startswith("worker")]
    return workers[0] if workers else server.process.pid


# Profiles


def profile(call: Call, x: np.ndarray, calls: int, lines: int) -> str:
    for _ in range(50):
        call(x)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call(x)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


# Report


def case_name(transport: str, rows: int) -> str:
    return f"{transport.upper() if transport == 'rest' else 'gRPC'} {rows}-row"


def summarise(results: list[Measurement]) -> list[dict[str, Any]]:
    summary = []
    for transport in TRANSPORTS:
        for rows in ROWS:
            case = [m for m in results if m.transport == transport and m.rows == rows]
            if not case:
                continue
            entry: dict[str, Any] = {"case": case_name(transport, rows), "transport": transport, "rows": rows}
            for client in CLIENTS:
                mine = [m for m in case if m.client == client]
                entry[client] = {
                    "calls_per_s": statistics.median(m.calls_per_s for m in mine),
                    "client_cpu_us": statistics.median(m.client_cpu_us for m in mine),
                    "server_cpu_us": statistics.median(m.server_cpu_us for m in mine),
                }
            by_round: dict[int, dict[str, float]] = {}
            for m in case:
                by_round.setdefault(m.round, {})[m.client] = m.calls_per_s
            entry["round_ratios"] = [r["core"] / r["triton"] for _, r in sorted(by_round.items())]
            entry["ratio"] = entry["core"]["calls_per_s"] / entry["triton"]["calls_per_s"]
            entry["median_round_ratio"] = statistics.median(entry["round_ratios"])
            summary.append(entry)
    return summary


def report(results: list[Measurement], summary: list[dict[str, Any]], markdown: bool) -> None:
    rows = [
        [
            str(m.round),
            case_name(m.transport, m.rows),
            CLIENT_LABELS[m.client],
            f"{m.calls_per_s:,.0f}",
            f"{m.client_cpu_us:,.0f}",
            f"{m.server_cpu_us:,.0f}",
        ]
        for m in results
    ]
    headers = ["round", "case", "client", "calls/s", "client CPU us/call", "server CPU us/call"]
    print("\nevery measurement:\n" + rt.table(headers, rows, markdown))
    rows = []
    for entry in summary:
        rows.append(
            [
                entry["case"],
                *(f"{entry[c]['calls_per_s']:,.0f}" for c in CLIENTS),
                *(f"{entry[c]['client_cpu_us']:,.0f}" for c in CLIENTS),
                *(f"{entry[c]['server_cpu_us']:,.0f}" for c in CLIENTS),
                ", ".join(f"{r:.2f}" for r in entry["round_ratios"]),
                f"{entry['median_round_ratio']:.2f}",
                f"**{entry['ratio']:.2f}**" if markdown else f"{entry['ratio']:.2f}",
            ]
        )
    headers = [
        "case",
        "core.client calls/s",
        "tritonclient calls/s",
        "core.client CPU us/call",
        "tritonclient CPU us/call",
        "server CPU us/call (core.client)",
        "server CPU us/call (tritonclient)",
        "core/triton per round",
        "median of rounds",
        "core/triton of medians (target >= 1)",
    ]
    print("\nmedians per case:\n" + rt.table(headers, rows, markdown))


def core_origin() -> str:
    """Where `core` is imported from (PYTHONPATH may put another checkout's
    first, as rest_throughput.py's --baseline-src does), and its git state."""
    import core

    package = Path(core.__file__).parent
    state = rt.git_state(package)
    return f"{package} ({state or 'not a git checkout'})"


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ["core", "tritonclient", "httpx", "httpcore", "h11", "geventhttpclient", "grpcio", "protobuf"]
    names += ["numpy", "scikit-learn"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except Exception:
            found[name] = "-"
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--calls-1", type=int, default=2000, help="timed 1-row calls per measurement")
    parser.add_argument("--calls-1000", type=int, default=1000, help="timed 1000-row calls per measurement")
    parser.add_argument(
        "--blocks",
        type=int,
        default=10,
        help="blocks per client and case in a round, alternating (default 10)",
    )
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls of each client before a case")
    parser.add_argument("--transports", default="rest,grpc", help="rest,grpc (default both)")
    parser.add_argument("--rows", default="1,1000", help="rows per call: 1,1000 (default both)")
    parser.add_argument("--model", choices=["linear", "sklearn"], default="linear")
    parser.add_argument(
        "--parallel-workers", type=int, default=0, help="the server's --parallel-workers (default 0)"
    )
    parser.add_argument(
        "--profile", default="", help="cases to profile after the rounds: rest-1,grpc-1000,..."
    )
    parser.add_argument("--profile-lines", type=int, default=30)
    parser.add_argument("--patch", type=Path, help="a Python file executed before the clients are made")
    parser.add_argument("--output", type=Path, help="write the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="tables as markdown")
    args = parser.parse_args()
    args.transports = [t for t in args.transports.split(",") if t]
    args.rows = [int(r) for r in args.rows.split(",") if r]
    if set(args.transports) - set(TRANSPORTS) or set(args.rows) - set(ROWS):
        parser.error("--transports takes rest,grpc and --rows 1,1000")
    args.profile = [p for p in args.profile.split(",") if p]
    return args


def run_rounds(
    args: argparse.Namespace, clients: Clients, estimator: Any, server_pid: int
) -> list[Measurement]:
    inputs = {rows: features(rows) for rows in ROWS}
    results = []
    for index in range(1, args.rounds + 1):
        order = CLIENTS if index % 2 else CLIENTS[::-1]
        for transport in args.transports:
            for rows in args.rows:
                calls = args.calls_1 if rows == 1 else args.calls_1000
                case = {client: clients.calls[client, transport] for client in order}
                measured = measure(case, order, inputs[rows], calls, args.blocks, args.warmup, server_pid)
                for client in order:
                    seconds, cpu, server_cpu, answer = measured[client]
                    check(answer, estimator, inputs[rows], f"{client} {transport} {rows}-row")
                    m = Measurement(index, transport, rows, client, calls, seconds, cpu, server_cpu)
                    results.append(m)
                    print(
                        f"round {index} {case_name(transport, rows):13} {CLIENT_LABELS[client]:12} "
                        f"{m.calls_per_s:6,.0f} calls/s  client CPU {m.client_cpu_us:4,.0f} us/call  "
                        f"server CPU {m.server_cpu_us:4,.0f} us/call",
                        flush=True,
                    )
    return results


def run_profiles(args: argparse.Namespace, clients: Clients) -> dict[str, str]:
    profiles = {}
    for case in args.profile:
        transport, rows_text = case.split("-")
        rows = int(rows_text)
        calls = args.calls_1 if rows == 1 else args.calls_1000
        for client in CLIENTS:
            call = clients.calls[client, transport]
            text = profile(call, features(rows), calls, args.profile_lines)
            profiles[f"{client} {case}"] = text
            print(f"\n=== profile: {CLIENT_LABELS[client]} {case}, {calls} calls ===\n{text}")
    return profiles


def main() -> int:
    args = parse_args()
    from core.testing import ServerProcess

    load_before = os.getloadavg()[0]
    if load_before > 0.5 * (os.cpu_count() or 1):
        print(f"warning: machine is busy (load average {load_before:.2f}): results will be noisy")
    if args.patch:
        runpy.run_path(str(args.patch), run_name="__patch__")
        print(f"patch applied: {args.patch}")
    origin = core_origin()
    print(f"core from {origin}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="client-latency-") as tmp:
        estimator, folder = train(Path(tmp) / "iris", args.model)
        with ServerProcess(folder, "--parallel-workers", str(args.parallel_workers)) as server:
            clients = Clients(f"127.0.0.1:{server.http_port}", f"127.0.0.1:{server.grpc_port}")
            try:
                for (client, transport), call in clients.calls.items():
                    for rows in ROWS:
                        x = features(rows)
                        check(call(x), estimator, x, f"{client} {transport} {rows}-row")
                print(
                    f"server {server.url} (model {args.model}, --parallel-workers "
                    f"{args.parallel_workers}); every client checked against scikit-learn"
                )
                results = run_rounds(args, clients, estimator, server_cpu_pid(server))
                profiles = run_profiles(args, clients)
            finally:
                clients.close()
    load_after = os.getloadavg()[0]
    summary = summarise(results)
    print(
        f"\nload average: {load_before:.2f} at start, {load_after:.2f} at end; "
        f"{time.monotonic() - started:.0f} s"
    )
    report(results, summary, args.markdown)
    if args.output:
        document = {
            "command": sys.argv,
            "python": platform.python_version(),
            "core": origin,
            "versions": versions(),
            "model": args.model,
            "parallel_workers": args.parallel_workers,
            "patch": str(args.patch) if args.patch else None,
            "load_average": [load_before, load_after],
            "results": [asdict(m) | {"calls_per_s": m.calls_per_s} for m in results],
            "summary": summary,
            "profiles": profiles,
        }
        args.output.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
