#!/usr/bin/env python3
"""Batch inference from the command line: `core infer` against MLServer
1.7.1's `mlserver infer`, on the same file of requests, against the same
core server, measured in one run.

The input: one JSONL file of `--requests` (10,000) Open Inference Protocol
(V2) REST requests, one a line, the form both tools read. Each request
holds `--rows` (1) iris rows (cycled) as one FP32 tensor, `input-0`, shape
[rows, 4], as JSON data, and an id, `req-00000`...; it names no outputs, so
the model answers both of its own (`predict` INT64, `predict_proba` FP64).

The server: `core start` (core.testing.ServerProcess) on 127.0.0.1 with free
ports, `--parallel-workers 0` (default), serving the model of
client_latency.py: the iris LogisticRegression as numpy arithmetic, cheap
enough (about 0.2 ms of server CPU per request) that the tools, not the
server, set the pace. `--model sklearn` serves it with core_sklearn.

The tools, each a new process per run, as a user runs them, with the same
number of requests in flight (`--workers`, 8), over REST (`mlserver infer`
has no gRPC):

- `core`: `core infer IN -m iris -u http://127.0.0.1:PORT -w 8 -o OUT.jsonl`,
  its defaults otherwise: binary tensors (the binary tensor extension) both
  ways;
- `core-json`: the same with `--no-binary`: JSON tensors both ways, as
  mlserver infer sends by default;
- `mlserver`: `mlserver infer -u 127.0.0.1:PORT -m iris -i IN -o OUT.jsonl
  -w 8`, its defaults otherwise (JSON tensors, one request per line), from
  the MLServer venv (`.venvs/mlserver`, made by `python3 dev.py test`;
  created here the same way when missing).

Each of `--rounds` (5) rounds runs every tool once, in an order that
rotates from round to round. The time is the tool's whole process, start to
exit (`perf_counter` around `subprocess.run`: the interpreter's start, the
imports, reading, sending, writing). Also measured: the tool's CPU time
(RUSAGE_CHILDREN) and the server's over the run. After each run the output
is checked: the exit status is 0, one response per request, no error
record, each response's id and predictions those of its request; for
`core infer`, the responses in input order (line i is request i, with
`"index": i`); for `mlserver infer`, which writes responses as they
complete, each request's `parameters.batch_index` once, and the report
says how many lines are out of input order. A failed check makes the run
INVALID (exit status 1).

The report gives every run, each tool's median time, and the ratios of the
medians mlserver / core and mlserver / core-json (target >= 2: core infer
at least twice as fast), per round and of the medians; and the same ratios
of CPU time (the tool's and the server's over the run, added up), which the
machine's other load moves less than the wall clock: on two busy cores the
tool and the server take turns, and the time approaches their CPU sum.

`--extra NAME=COMMAND` adds a `core`-like command (a wrapper that patches
core infer, a scratch copy) to the rotation, run with core's arguments.

    .venv/bin/python benchmarks/batch_infer.py --markdown --output /tmp/batch-infer.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import client_latency as cl
import numpy as np
import rest_throughput as rt

TOOLS = ("core", "core-json", "mlserver")
MLSERVER_VENV = rt.REPO / ".venvs" / "mlserver"
MLSERVER_PACKAGES = ["mlserver==1.7.1", "uvloop<0.22"]  # as dev.py installs them


@dataclass
class Run:
    round: int
    tool: str
    seconds: float
    tool_cpu_s: float
    server_cpu_s: float
    exit_status: int
    responses: int
    out_of_order: int
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def ensure_mlserver(venv_dir: Path) -> Path:
    """The `mlserver` command of `venv_dir`, made as dev.py makes it when missing."""
    command = venv_dir / "bin" / "mlserver"
    if not command.exists():
        print(f"creating {venv_dir} (mlserver 1.7.1)", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
        pip = [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, *MLSERVER_PACKAGES], check=True)
    return command


def write_requests(path: Path, count: int, rows: int) -> np.ndarray:
    """`count` JSONL requests of `rows` iris rows each; the features of every
    request, [count, rows, 4] FP32, as the server reads them."""
    from sklearn.datasets import load_iris

    iris = load_iris().data  # float64 with one decimal: written as 5.1, read as FP32
    index = np.arange(count * rows) % len(iris)
    values = iris[index].reshape(count, rows, 4)
    with path.open("w") as file:
        for number, block in enumerate(values):
            request = {
                "id": f"req-{number:05d}",
                "inputs": [
                    {"name": cl.INPUT, "shape": [rows, 4], "datatype": "FP32", "data": block.ravel().tolist()}
                ],
            }
            file.write(json.dumps(request, separators=(",", ":")) + "\n")
    return values.astype(np.float32)


def command(tool: str, args: argparse.Namespace, port: int, source: Path, target: Path) -> list[str]:
    if tool == "mlserver":
        return [
            str(args.mlserver), "infer", "-u", f"127.0.0.1:{port}", "-m", cl.MODEL_NAME,
            "-i", str(source), "-o", str(target), "-w", str(args.workers),
        ]  # fmt: skip
    program = args.extra.get(tool, args.core)
    line = [
        str(program), "infer", str(source), "-m", cl.MODEL_NAME, "-u", f"http://127.0.0.1:{port}",
        "-w", str(args.workers), "-o", str(target),
    ]  # fmt: skip
    return [*line, "--no-binary"] if tool == "core-json" else line


def tool_env(tool: str) -> dict[str, str]:
    """The caller's environment less proxies (loopback only) and the tools'
    own settings variables; mlserver's also less PYTHONPATH, which may name
    a checkout of core for core's commands and server."""
    drop = ("MLSERVER_", "CORE_")
    proxies = {"http_proxy", "https_proxy", "all_proxy"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(drop) and key.lower() not in proxies
    }
    if tool == "mlserver":
        env.pop("PYTHONPATH", None)
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(
    tool: str, args: argparse.Namespace, port: int, server_pid: int, source: Path, workdir: Path
) -> tuple[float, float, float, int, Path, Path]:
    target = workdir / f"{tool}.jsonl"
    target.unlink(missing_ok=True)
    log = workdir / f"{tool}.log"
    line = command(tool, args, port, source, target)
    subprocess.run(["sync"], check=False)
    server = rt.cpu_seconds(server_pid)
    cpu = children_cpu()
    with log.open("wb") as out:
        started = time.perf_counter()
        status = subprocess.run(line, stdout=out, stderr=subprocess.STDOUT, env=tool_env(tool), check=False)
        seconds = time.perf_counter() - started
    return seconds, children_cpu() - cpu, rt.cpu_seconds(server_pid) - server, status.returncode, target, log


def check_output(
    tool: str, target: Path, expected: tuple[np.ndarray, np.ndarray], count: int
) -> tuple[int, int, list[str]]:
    """(responses, lines out of input order, problems)."""
    predict, proba = expected
    problems: list[str] = []
    if not target.exists():
        return 0, 0, [f"no output file {target}"]
    lines = target.read_bytes().splitlines()
    seen = np.zeros(count, dtype=bool)
    out_of_order = 0
    for number, line in enumerate(lines):
        record = json.loads(line)
        if "error" in record:
            problems.append(f"line {number}: error {record['error']!r}")
            continue
        if tool == "mlserver":
            index = (record.get("parameters") or {}).get("batch_index")
        else:
            index = record.get("index")
        if not isinstance(index, int) or not 0 <= index < count or seen[index]:
            problems.append(f"line {number}: index {index!r} missing, out of range or repeated")
            continue
        seen[index] = True
        out_of_order += index != number
        if record.get("id") != f"req-{index:05d}":
            problems.append(f"line {number}: id {record.get('id')!r} for request {index}")
        outputs = {output["name"]: output for output in record.get("outputs", [])}
        try:
            got_predict = np.asarray(outputs["predict"]["data"]).ravel()
            got_proba = np.asarray(outputs["predict_proba"]["data"], dtype=np.float64).ravel()
        except KeyError as error:
            problems.append(f"line {number}: no output {error}")
            continue
        if not np.array_equal(got_predict, predict[index]) or not np.allclose(
            got_proba, proba[index].ravel(), atol=1e-6
        ):
            problems.append(f"line {number}: predictions differ from scikit-learn's for request {index}")
        if len(problems) > 5:
            problems.append("...")
            break
    if len(lines) != count or not seen.all():
        problems.append(f"{len(lines)} lines, {int(seen.sum())} of {count} requests answered")
    if tool != "mlserver" and out_of_order:
        problems.append(f"{out_of_order} lines out of input order")
    return len(lines), out_of_order, problems


def report(runs: list[Run], tools: list[str], markdown: bool) -> dict[str, Any]:
    rows = [
        [
            str(r.round),
            r.tool,
            f"{r.seconds:.2f}",
            f"{r.tool_cpu_s:.2f}",
            f"{r.server_cpu_s:.2f}",
            f"{r.responses:,}",
            "yes" if r.out_of_order == 0 else f"no ({r.out_of_order:,} lines elsewhere)",
            "ok" if r.valid else "INVALID: " + "; ".join(r.problems[:3]),
        ]
        for r in runs
    ]
    headers = [
        "round",
        "tool",
        "time s",
        "tool CPU s",
        "server CPU s",
        "responses",
        "in input order",
        "check",
    ]
    print("\nevery run:\n" + rt.table(headers, rows, markdown))
    medians = {
        tool: {
            key: statistics.median(getattr(r, key) for r in runs if r.tool == tool)
            for key in ("seconds", "tool_cpu_s", "server_cpu_s")
        }
        for tool in tools
    }
    rounds = sorted({r.round for r in runs})
    by_round = {(r.round, r.tool): r for r in runs}
    ratios: dict[str, Any] = {}
    for core in ("core", "core-json", *(tool for tool in tools if tool not in TOOLS)):
        if core in tools and "mlserver" in tools:
            mlserver, mine = medians["mlserver"], medians[core]
            ratios[f"mlserver/{core}"] = {
                "per_round": [by_round[n, "mlserver"].seconds / by_round[n, core].seconds for n in rounds],
                "of_medians": mlserver["seconds"] / mine["seconds"],
                "cpu_per_round": [_cpu(by_round[n, "mlserver"]) / _cpu(by_round[n, core]) for n in rounds],
                "cpu_of_medians": (mlserver["tool_cpu_s"] + mlserver["server_cpu_s"])
                / (mine["tool_cpu_s"] + mine["server_cpu_s"]),
            }
    rows = [
        [tool, f"{m['seconds']:.2f}", f"{m['tool_cpu_s']:.2f}", f"{m['server_cpu_s']:.2f}"]
        for tool, m in medians.items()
    ]
    print("\nmedians:\n" + rt.table(["tool", "time s", "tool CPU s", "server CPU s"], rows, markdown))
    rows = [
        [
            name,
            ", ".join(f"{v:.2f}" for v in ratio["per_round"]),
            f"**{ratio['of_medians']:.2f}**" if markdown else f"{ratio['of_medians']:.2f}",
            ", ".join(f"{v:.2f}" for v in ratio["cpu_per_round"]),
            f"{ratio['cpu_of_medians']:.2f}",
        ]
        for name, ratio in ratios.items()
    ]
    headers = ["ratio", "time, per round", "time, of the medians (target >= 2)", "CPU, per round"]
    headers.append("CPU, of the medians")
    print("\nratios (CPU: the tool's and the server's together):\n" + rt.table(headers, rows, markdown))
    return {"medians": medians, "ratios": ratios}


def _cpu(run: Run) -> float:
    return run.tool_cpu_s + run.server_cpu_s


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000, help="requests in the file (default 10,000)")
    parser.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--workers", type=int, default=8, help="requests in flight, both tools (default 8)")
    parser.add_argument("--only", default=",".join(TOOLS), help=f"tools to run (default {','.join(TOOLS)})")
    parser.add_argument("--model", choices=["linear", "sklearn"], default="linear")
    parser.add_argument("--parallel-workers", type=int, default=0, help="the server's (default 0)")
    parser.add_argument(
        "--core", type=Path, default=Path(sys.executable).parent / "core", help="the core command"
    )
    parser.add_argument("--mlserver-venv", type=Path, default=MLSERVER_VENV)
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="also run COMMAND (a `core`-like command: a scratch copy, a wrapper that patches core infer) "
        "with core's arguments, as tool NAME, in the rotation; repeatable",
    )
    parser.add_argument("--output", type=Path, help="write the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="tables as markdown")
    args = parser.parse_args()
    args.tools = [tool for tool in args.only.split(",") if tool]
    if not args.tools or set(args.tools) - set(TOOLS):
        parser.error(f"--only takes some of {','.join(TOOLS)}")
    extra = [item.partition("=") for item in args.extra]
    if any(not name or not program or name in TOOLS for name, _, program in extra):
        parser.error("--extra takes NAME=COMMAND, NAME not one of " + ",".join(TOOLS))
    args.extra = {name: Path(program) for name, _, program in extra}
    args.tools += list(args.extra)
    return args


def main() -> int:
    args = parse_args()
    from core.testing import ServerProcess

    if "mlserver" in args.tools:
        args.mlserver = ensure_mlserver(args.mlserver_venv)
    load_before = os.getloadavg()[0]
    if load_before > 0.5 * (os.cpu_count() or 1):
        print(f"warning: machine is busy (load average {load_before:.2f}): results will be noisy")
    origin = cl.core_origin()
    print(f"core from {origin}")
    started = time.monotonic()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="batch-infer-") as tmp:
        workdir = Path(tmp)
        estimator, folder = cl.train(workdir / "iris", args.model)
        source = workdir / "requests.jsonl"
        features = write_requests(source, args.requests, args.rows)
        flat = features.reshape(-1, 4)
        expected = (
            estimator.predict(flat).reshape(args.requests, args.rows),
            estimator.predict_proba(flat).reshape(args.requests, args.rows, 3),
        )
        print(f"{source.stat().st_size / 1e6:.1f} MB, {args.requests:,} requests of {args.rows} row(s)")
        with ServerProcess(folder, "--parallel-workers", str(args.parallel_workers)) as server:
            pid = cl.server_cpu_pid(server)
            print(f"server {server.url} (model {args.model}, --parallel-workers {args.parallel_workers})")
            for index in range(1, args.rounds + 1):
                shift = (index - 1) % len(args.tools)
                for tool in args.tools[shift:] + args.tools[:shift]:
                    seconds, cpu, server_cpu, status, target, log = run_tool(
                        tool, args, server.http_port, pid, source, workdir
                    )
                    responses, out_of_order, problems = check_output(tool, target, expected, args.requests)
                    if status != 0:
                        problems.insert(0, f"exit status {status}: {log.read_text(errors='replace')[-600:]}")
                    run = Run(
                        index, tool, seconds, cpu, server_cpu, status, responses, out_of_order, problems
                    )
                    runs.append(run)
                    order = "in order" if out_of_order == 0 else f"{out_of_order:,} lines out of input order"
                    print(
                        f"round {index} {tool:9} {seconds:6.2f} s  tool CPU {cpu:5.2f} s  server CPU "
                        f"{server_cpu:5.2f} s  {responses:,} responses, {order}  "
                        + ("ok" if run.valid else "INVALID: " + "; ".join(problems[:3])),
                        flush=True,
                    )
                    if not server.alive():
                        print("the server died:\n" + server.log()[-2000:])
                        return 1
    load_after = os.getloadavg()[0]
    print(
        f"\nload average: {load_before:.2f} at start, {load_after:.2f} at end; "
        f"{time.monotonic() - started:.0f} s"
    )
    summary = report(runs, args.tools, args.markdown)
    if args.output:
        document = {
            "command": sys.argv,
            "python": platform.python_version(),
            "core": origin,
            "versions": cl.versions(),
            "model": args.model,
            "requests": args.requests,
            "rows": args.rows,
            "workers": args.workers,
            "load_average": [load_before, load_after],
            "runs": [asdict(r) for r in runs],
            **summary,
        }
        args.output.write_text(json.dumps(document, indent=2))
    return 0 if all(r.valid for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
