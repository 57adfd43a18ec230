#!/usr/bin/env python3
"""gRPC throughput of `core` against MLServer 1.7.1 and a bare grpc.aio app, and REST
binary vs JSON on core.

Same method as rest_throughput.py (see benchmarks/README.md): servers alone on
127.0.0.1, same iris artifact, rounds in rotating order, medians, ratios.

- grpc: `h2load -c16 -m1 -t2` POSTs a framed `ModelInferRequest` (raw
  little-endian tensor in raw_input_contents) to
  /inference.GRPCInferenceService/ModelInfer on core, on MLServer and on
  bare_grpc.py (grpc.aio, protobuf, numpy and predict only), and on bare-2:
  two copies of bare_grpc.py sharing the port, the most two processes that
  do nothing else serve on this machine (core's default configuration runs
  two processes: the server and one worker).
- rest-binary: on core, `wrk` with the 1000-row FP64 payload as OIP JSON
  and as a binary tensor body (binary outputs requested); ratio binary/JSON.
  On bare-2, the 1-row and the 1000-row JSON payloads: a binary 1000-row
  request costs at least what a 1-row JSON one does (the same HTTP and JSON
  work or more, and a larger predict), so bare-2's 1-row/1000-row ratio
  bounds the binary/JSON ratio of a server whose JSON path is as lean as
  orjson and numpy.

Runs under the core venv python (needs grpcio, numpy and core's generated
protobuf modules), plus the `h2load` (Debian `nghttp2-client`) and `wrk` binaries.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import grpc
import numpy as np
import rest_throughput as rt
from rest_throughput import Payload, Predictions, Result, Server

from core.grpc.generated import inference_pb2 as pb

GRPC_SERVERS = ("core", "core-in-process", "mlserver", "bare", "bare-2")
# (numerator, denominator) of the gRPC ratios reported.
GRPC_PAIRS = (
    *rt.REFERENCE_PAIRS,
    ("bare", "mlserver"),
    ("bare-2", "mlserver"),
    ("core", "bare-2"),
    *rt.BASELINE_PAIRS,
)
# The servers of the rest-binary part.
BINARY_SERVERS = ("core", "bare-2")
GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"
BINARY_NAME = "1000-row FP64 binary"
JSON_NAME = "1000-row FP64 JSON"
ONE_ROW_NAME = "1-row FP32 JSON"  # on bare-2
NUMPY_DTYPES = {"INT32": "<i4", "INT64": "<i8", "FP32": "<f4", "FP64": "<f8"}
TYPED_FIELDS = {"INT32": "int_contents", "INT64": "int64_contents", "FP32": "fp32_contents"}
TYPED_FIELDS["FP64"] = "fp64_contents"


# --------------------------------------------------------------------------- payloads


def grpc_payloads(iris: list[list[float]], typed: bool) -> list[Payload]:
    """Framed ModelInferRequest bodies: flag 0, 4-byte big-endian length, message."""

    def request(rows: list[list[float]], datatype: str) -> bytes:
        array = np.asarray(rows, dtype=NUMPY_DTYPES[datatype])
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="input-0", datatype=datatype, shape=list(array.shape)
        )
        message = pb.ModelInferRequest(model_name=rt.MODEL_NAME, inputs=[tensor])
        if typed:
            getattr(message.inputs[0].contents, TYPED_FIELDS[datatype]).extend(array.ravel().tolist())
        else:
            message.raw_input_contents.append(array.tobytes())
        data = message.SerializeToString()
        return b"\x00" + len(data).to_bytes(4, "big") + data

    big = [iris[i % len(iris)] for i in range(1000)]  # same rows as the REST payload
    return [
        Payload("1-row FP32", 1, request([[5.1, 3.5, 1.4, 0.2]], "FP32")),
        Payload("1000-row FP64", 1000, request(big, "FP64")),
    ]


def binary_payload(iris: list[list[float]]) -> tuple[Payload, dict[str, str]]:
    """Triton binary tensor body for the 1000-row FP64 payload, and its headers."""
    raw = np.asarray([iris[i % len(iris)] for i in range(1000)], dtype="<f8").tobytes()
    tensor = {
        "name": "input-0",
        "shape": [1000, 4],
        "datatype": "FP64",
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps(
        {"inputs": [tensor], "parameters": {"binary_data_output": True}}, separators=(",", ":")
    ).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return Payload(BINARY_NAME, 1000, header + raw), headers


# --------------------------------------------------------------------------- checks


def decode_outputs(response: pb.ModelInferResponse) -> list[object]:
    output = response.outputs[0]
    if response.raw_output_contents:
        return np.frombuffer(response.raw_output_contents[0], NUMPY_DTYPES[output.datatype]).tolist()
    return list(getattr(output.contents, TYPED_FIELDS[output.datatype]))


def grpc_preflight(port: int, payload: Payload) -> tuple[str, list[object] | None, int]:
    """One ModelInfer through grpcio (h2load sees HTTP status only, not grpc-status).

    Returns (error, predictions, framed response size)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(GRPC_METHOD)  # bytes in, bytes out
        try:
            body = call(payload.body[5:], timeout=30, wait_for_ready=True)
        except grpc.RpcError as exc:
            return f"gRPC {exc.code().name}: {exc.details()}", None, 0
    response = pb.ModelInferResponse.FromString(body)
    predictions = decode_outputs(response)
    if len(predictions) != payload.rows:
        return f"expected {payload.rows} predictions, got {len(predictions)}", predictions, 0
    return "", predictions, 5 + len(body)


def binary_preflight(port: int, payload: Payload, headers: dict[str, str]) -> tuple[str, list[object] | None]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{rt.INFER_PATH}", data=payload.body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            length = int(resp.headers["Inference-Header-Content-Length"])
            body = resp.read()
    except (OSError, TypeError) as exc:  # HTTPError is an OSError; TypeError: header missing
        return f"request failed: {exc}", None
    output = json.loads(body[:length])["outputs"][0]
    size = output["parameters"]["binary_data_size"]
    predictions = np.frombuffer(body[length : length + size], NUMPY_DTYPES[output["datatype"]]).tolist()
    if len(predictions) != payload.rows:
        return f"expected {payload.rows} predictions, got {len(predictions)}", predictions
    return "", predictions


def bare_grpc_server(python: Path, artifact: Path, workdir: Path, processes: int = 1) -> Server:
    port, grpc_port = rt.free_port(), rt.free_port()
    cmd = [str(python), str(rt.HERE / "bare_grpc.py"), "--model", str(artifact)]
    cmd += ["--port", str(port), "--grpc-port", str(grpc_port), "--processes", str(processes)]
    return Server("bare" if processes == 1 else f"bare-{processes}", cmd, workdir, port, grpc_port)


# --------------------------------------------------------------------------- h2load


def run_h2load(port: int, body: Path, args: argparse.Namespace, duration: int, log: Path) -> str:
    cmd = ["h2load", f"-c{args.connections}", "-m1", f"-t{args.threads}", f"-D{duration}"]
    cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    cmd += ["-d", str(body), f"--log-file={log}", f"http://127.0.0.1:{port}{GRPC_METHOD}"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout


def parse_h2load(out: str, log: Path, server: str, payload: str, error: str, response_size: int) -> Result:
    rps = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", out, re.MULTILINE)
    counts = re.search(
        r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
        re.MULTILINE,
    )
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.MULTILINE)
    data = re.search(r"\((\d+)\) data", out)
    if rps is None or counts is None or codes is None or data is None:
        raise ValueError(f"unexpected h2load output:\n{out}")
    done, succeeded, failed, errored, timeout = map(int, counts.groups()[1:])
    non_2xx = sum(map(int, codes.groups()[1:]))
    # Per-request log: start (us), HTTP status, duration (us). h2load has no percentiles.
    durations = np.array([int(line.split("\t")[2]) for line in log.read_text().splitlines()]) / 1000
    # A gRPC error is a trailers-only response with no DATA: every OK response
    # carries the framed message, so fewer DATA bytes than that means errors.
    if int(data[1]) < succeeded * response_size:
        error = error or f"only {int(data[1])} DATA bytes for {succeeded} responses of {response_size}"
    return Result(
        server=server,
        payload=payload,
        requests_per_s=float(rps[1]),
        p50_ms=float(np.percentile(durations, 50)),
        p99_ms=float(np.percentile(durations, 99)),
        requests=done,
        non_2xx=non_2xx,
        socket_errors=failed + errored + timeout,
        valid=not error and non_2xx == 0 and failed + errored + timeout == 0 and succeeded == done,
        note=error,
    )


def measure_grpc(
    server: Server,
    payloads: list[Payload],
    bodies: list[Path],
    args: argparse.Namespace,
    seen: Predictions,
    round_number: int,
) -> list[Result]:
    results: list[Result] = []
    for payload, body in zip(payloads, bodies, strict=True):
        error, predictions, size = grpc_preflight(server.grpc_port, payload)
        if predictions is not None:
            first, expected = seen.setdefault(payload.name, (server.name, predictions))
            if not error and predictions != expected:
                error = f"predictions differ from {first}"
        log = body.with_suffix(".log")
        run_h2load(server.grpc_port, body, args, args.warmup, log)  # warm-up, discarded
        load = functools.partial(run_h2load, server.grpc_port, body, args, args.duration, log)
        out, usage = rt.measured(server.pid, load)
        result = parse_h2load(out, log, server.name, payload.name, error, size)
        result.busy, result.idle = usage.busy, usage.idle
        result.round = round_number
        print(
            f"[round {round_number}] [{server.name}] gRPC {payload.name}: "
            f"{result.requests_per_s:,.0f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, cores {rt.busy_cells(result)}, "
            f"{'ok' if result.valid else 'INVALID ' + result.note}",
            flush=True,
        )
        results.append(result)
    return results


# --------------------------------------------------------------------------- main


def binary_ratios(results: list[Result]) -> list[dict[str, object]]:
    """core's binary/JSON, and its bound for a lean JSON path: bare-2's 1-row/1000-row JSON."""
    rates = {(r.server, r.payload): r.requests_per_s for r in results}
    rows: list[dict[str, object]] = []
    for server, fast, ratio in (
        ("core", BINARY_NAME, "core binary / core JSON"),
        ("bare-2", ONE_ROW_NAME, "bare-2 1-row JSON / bare-2 JSON (bound)"),
    ):
        if (server, fast) in rates and rates.get((server, JSON_NAME)):
            value = rates[(server, fast)] / rates[(server, JSON_NAME)]
            rows.append({"payload": "1000-row FP64", "ratio": ratio, "value": value})
    return rows


def report_binary(results: list[Result], markdown: bool) -> list[dict[str, object]]:
    for number in sorted({r.round for r in results}):
        for row in binary_ratios([r for r in results if r.round == number]):
            print(f"round {number}: {row['ratio']} = {row['value']:.2f}")
    summary = rt.medians(results)
    rows = [[r.server, r.payload, *rt.result_cells(r)] for r in summary]
    headers = ["server", "REST payload", *rt.RESULT_HEADERS]
    print("\nmedians:\n" + rt.table(headers, rows, markdown))
    ratio_rows = binary_ratios(summary)
    for row in ratio_rows:
        print(f"\n{row['ratio']}, of the medians: {row['value']:.2f}")
    return ratio_rows


def parse_args() -> argparse.Namespace:
    parser = rt.method_parser(__doc__)
    parser.add_argument("--parts", default="grpc,rest-binary", help="comma-separated: grpc,rest-binary")
    rt.add_selection_arguments(parser, GRPC_SERVERS)  # --payloads: of the grpc part
    parser.add_argument(
        "--typed",
        action="store_true",
        help="send typed contents (fp32/fp64_contents) instead of raw_input_contents to every server",
    )
    args = parser.parse_args()
    args.parts = rt.comma_list(parser, "--parts", args.parts, ["grpc", "rest-binary"])
    rt.selection(parser, args, GRPC_SERVERS)
    return args


# The load generators, by Debian package.
TOOLS = {"h2load": "nghttp2-client", "wrk": "wrk"}


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    load_before = rt.check_machine(TOOLS)
    if load_before is None:
        return 2
    core_python = Path(sys.executable)  # this script needs core's venv anyway
    grpc_on, binary_on = "grpc" in args.parts, "rest-binary" in args.parts
    # rest-binary alone measures only its own servers.
    selected = [name for name in args.only if grpc_on or name in BINARY_SERVERS]
    if not selected:
        print("nothing to run")
        return 0
    baseline = rt.prepare_baseline(core_python, args.baseline_src) if args.baseline_src else None
    pythons = [core_python] + ([rt.ensure_mlserver_venv(rt.MLSERVER_VENV)] if "mlserver" in selected else [])

    failures: list[str] = []
    grpc_results: list[Result] = []
    binary_results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="grpc-bench-") as tmp:
        workdir = Path(tmp)
        core_dir, artifact, iris = rt.prepare_model(args.model_dir.resolve(), workdir, pythons)
        versions = {str(p): rt.sklearn_version(p) for p in pythons}
        if len(set(versions.values())) > 1:
            print(f"warning: scikit-learn versions differ: {versions}", file=sys.stderr)
        payloads = rt.selected_payloads(grpc_payloads(iris, args.typed), args.payloads)
        bodies = []
        for i, payload in enumerate(payloads):
            bodies.append(workdir / f"grpc-{i}.bin")
            bodies[-1].write_bytes(payload.body)
        json_one, json_big = rt.build_payloads(iris)
        json_one = Payload(ONE_ROW_NAME, json_one.rows, json_one.body)
        json_big = Payload(JSON_NAME, json_big.rows, json_big.body)
        binary, binary_headers = binary_payload(iris)
        rest_payloads = [json_big, binary]
        scripts = [
            rt.write_lua(json_big, workdir, 10),
            rt.write_lua(binary, workdir, 11, binary_headers),
        ]
        one_row_script = rt.write_lua(json_one, workdir, 12)

        def rest_check(port: int, payload: Payload) -> tuple[str, list[object] | None]:
            if payload.name == BINARY_NAME:
                return binary_preflight(port, payload, binary_headers)
            return rt.preflight(port, payload)

        factories: dict[str, Callable[[Path], Server]] = {
            "core": lambda folder: rt.core_server(core_python, core_dir, folder),
            "core-in-process": lambda folder: rt.core_server(
                core_python, core_dir, folder, rt.IN_PROCESS, "core-in-process"
            ),
            "mlserver": lambda folder: rt.mlserver_server(pythons[-1], artifact, folder),
            "bare": lambda folder: bare_grpc_server(core_python, artifact, folder),
            "bare-2": lambda folder: bare_grpc_server(core_python, artifact, folder, processes=2),
        }
        if baseline:
            factories |= rt.baseline_factories(core_python, core_dir, baseline)
        grpc_seen: Predictions = {}
        rest_seen: Predictions = {}
        rounds = rt.server_rounds(selected, args.rounds, factories, workdir, args.ready_timeout, failures)
        for round_number, server in rounds:
            if grpc_on:
                grpc_results += measure_grpc(server, payloads, bodies, args, grpc_seen, round_number)
            if binary_on and server.name == "core":
                # Alternate JSON/binary order between rounds, like the servers.
                order = [0, 1] if round_number % 2 else [1, 0]
                binary_results += rt.measure(
                    server,
                    [rest_payloads[i] for i in order],
                    [scripts[i] for i in order],
                    args,
                    rest_seen,
                    round_number,
                    rest_check,
                )
            if binary_on and server.name == "bare-2":
                binary_results += rt.measure(
                    server,
                    [json_one, json_big],
                    [one_row_script, scripts[0]],
                    args,
                    rest_seen,
                    round_number,
                )

    # rest_seen compared the JSON and binary predictions only by payload name:
    # check that both forms predicted the same classes.
    if (
        JSON_NAME in rest_seen
        and BINARY_NAME in rest_seen
        and rest_seen[JSON_NAME][1] != rest_seen[BINARY_NAME][1]
    ):
        print("error: binary and JSON predictions differ", file=sys.stderr)
        failures.append("binary-predictions")
    document: dict[str, object] = {}
    if grpc_results:
        print(f"\n== gRPC ModelInfer ({'typed contents' if args.typed else 'raw_input_contents'})")
        document["grpc_ratios_of_medians"] = rt.report(grpc_results, payloads, args.markdown, GRPC_PAIRS)
    if binary_results:
        print("\n== REST 1000-row FP64 on core: binary tensor vs JSON, and the bound on their ratio")
        document["binary_ratios_of_medians"] = report_binary(binary_results, args.markdown)
    elapsed = time.monotonic() - started
    print(f"\ntotal time: {elapsed:.0f} s")
    results = grpc_results + binary_results
    if args.output:
        h2load_version = subprocess.run(["h2load", "--version"], check=False, capture_output=True, text=True)
        facts = rt.run_facts(args, versions, load_before)
        facts["method"] |= {
            "streams_per_connection": 1,
            "grpc_tensor_form": "typed" if args.typed else "raw",
            "h2load": h2load_version.stdout.strip(),
            **rt.baseline_facts(baseline),
        }
        document |= facts
        document |= {
            "grpc_results": [asdict(r) for r in grpc_results],
            "binary_results": [asdict(r) for r in binary_results],
            "failed": failures,
            "elapsed_s": round(elapsed, 1),
        }
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failures or not all(r.valid for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
