#!/usr/bin/env python3
"""The worker pool of `core` (`parallel_workers`): what it costs, how it
scales, what replicas save. Issue 4, point 8 (a), (b) and (d).

Same method as rest_throughput.py (see benchmarks/README.md): every
configuration is a `core start` of its own on 127.0.0.1, alone on the
machine, once per round in an order that rotates between rounds; each
payload is checked once (HTTP 200, the predictions scikit-learn makes in this
script), warmed up, then loaded with wrk; medians of the rounds and their
ratios are the result. Sections (`--only`):

- overhead: the examples/iris model, 1-row FP32, `--parallel-workers 1` vs 0.
- grpc-overhead: the same over gRPC ModelInfer with h2load (grpc_throughput.py).
- scaling: a 200-tree random forest on iris, 1000-row FP64, 2 workers vs 1
  (and 0 as a reference), wrk with `--scaling-connections` (8).
- memory: four copies of a large forest in 2 workers, `replicas: 1` each vs
  every model in every worker; resident memory (RSS and PSS) of the server
  and its workers once ready and after some requests.

Runs under the core venv's python (scikit-learn, joblib, grpcio, core's
generated protobuf modules), with the `wrk` and `h2load` binaries.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc_throughput as gt
import joblib
import numpy as np
import rest_throughput as rt
from rest_throughput import Payload, Predictions, Result, Server
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier

SECTIONS = ("overhead", "grpc-overhead", "scaling", "memory")
HARNESS = "scikit-learn in the harness"  # the source of the expected predictions
OVERHEAD_PAIRS = [("workers-1", "workers-0")]
SCALING_PAIRS = [("workers-2", "workers-1"), ("workers-2", "workers-0")]
MEMORY_CONFIGS = ("replicas-1", "replicas-all")
MEMORY_MODELS = 4
MEMORY_WORKERS = 2
# The scaling model: one predict on 1000 rows takes tens of ms on one core.
SCALING_FOREST = {"n_estimators": 200, "random_state": 0}
# The memory model: fully grown trees on noisy data, about 45 MB each.
MEMORY_DATA = {
    "n_samples": 30000,
    "n_features": 4,
    "n_informative": 4,
    "n_redundant": 0,
    "flip_y": 0.1,
    "random_state": 0,
}
MEMORY_FOREST = {"n_estimators": 100, "random_state": 0}


# --------------------------------------------------------------------------- models


def infer_path(name: str) -> str:
    return f"/v2/models/{name}/infer"


def write_model(folder: Path, name: str, artifact: Path, **settings: Any) -> None:
    folder.mkdir(parents=True)
    values = {
        "name": name,
        "implementation": "core_sklearn.SKLearnModel",
        "parameters": {"uri": str(artifact)},
        **settings,
    }
    (folder / "model-settings.json").write_text(json.dumps(values))


def train_forest(features: np.ndarray, labels: np.ndarray, artifact: Path, **options: Any) -> Any:
    started = time.monotonic()
    # Trained on every core, then saved with n_jobs=None: one predict, one core.
    forest = RandomForestClassifier(n_jobs=-1, **options).fit(features, labels)
    forest.set_params(n_jobs=None)
    joblib.dump(forest, artifact)
    size = artifact.stat().st_size / 1e6
    print(
        f"trained {options} in {time.monotonic() - started:.0f} s: {artifact.name} {size:.1f} MB", flush=True
    )
    return forest


def expected(model: Any, payload: Payload, name: str = "") -> Predictions:
    """What every server must answer for the OIP JSON `payload` (checked
    under `name`, by default its own): the model's own predictions."""
    tensor = json.loads(payload.body)["inputs"][0]
    array = np.asarray(tensor["data"], dtype=gt.NUMPY_DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
    return {name or payload.name: (HARNESS, model.predict(array).tolist())}


def workers_server(python: Path, model_dir: Path, folder: Path, workers: int) -> Server:
    server = rt.core_server(python, model_dir, folder, ["--parallel-workers", str(workers)])
    return replace(server, name=f"workers-{workers}")


# --------------------------------------------------------------------------- CPU per request


@dataclass
class CpuCost:
    """CPU time per request of each process of a server, over one short load run."""

    config: str
    load: str
    requests: int
    us_per_request: dict[str, float]
    cores: float  # CPU seconds of all the processes per second of load
    round: int = 1
    valid: bool = True


def cpu_probe(server: Server, load: str, run_load: Callable[[], Result], round_number: int) -> CpuCost:
    result, usage = rt.measured(server.pid, run_load)
    seconds_per_request = usage.elapsed / max(result.requests, 1)
    costs = {role: cores * seconds_per_request * 1e6 for role, cores in usage.busy.items()}
    total = sum(costs.values())
    cores = sum(usage.busy.values())
    print(
        f"[round {round_number}] [{server.name}] {load} CPU per request: "
        + ", ".join(f"{role} {us:.0f} us" for role, us in costs.items())
        + f", total {total:.0f} us ({result.requests} requests, {cores:.2f} cores busy)"
        + ("" if result.valid else " INVALID"),
        flush=True,
    )
    return CpuCost(server.name, load, result.requests, costs, cores, round_number, result.valid)


def wrk_load(
    server: Server, payload: Payload, lua: Path, load: argparse.Namespace
) -> Callable[[int], Result]:
    """wrk on `server` for the seconds given, with no check of its own."""

    def run(seconds: int) -> Result:
        out = rt.run_wrk(server.port, lua, load, seconds, payload.path)
        return rt.parse_wrk(out, server.name, payload.name, "")

    return run


def h2load_load(
    server: Server, payload: Payload, body: Path, load: argparse.Namespace
) -> Callable[[int], Result]:
    """h2load on `server`'s gRPC port for the seconds given, with no check of its own."""

    def run(seconds: int) -> Result:
        log = body.with_suffix(".probe.log")
        out = gt.run_h2load(server.grpc_port, body, load, seconds, log)
        return gt.parse_h2load(out, log, server.name, payload.name, "", 0)

    return run


def report_cpu(costs: list[CpuCost], markdown: bool) -> list[dict[str, object]]:
    """Per configuration and load, the median over the rounds of each process's µs per request."""
    groups: dict[tuple[str, str], list[CpuCost]] = {}
    for cost in costs:
        groups.setdefault((cost.config, cost.load), []).append(cost)
    roles = sorted({role for cost in costs for role in cost.us_per_request}, key=lambda r: (r != "server", r))
    rows: list[dict[str, object]] = []
    for (config, load), group in groups.items():
        row: dict[str, object] = {"config": config, "load": load}
        for role in roles:
            values = [c.us_per_request[role] for c in group if role in c.us_per_request]
            if values:
                row[role] = statistics.median(values)
        row["total"] = statistics.median(sum(c.us_per_request.values()) for c in group)
        row["cores"] = statistics.median(c.cores for c in group)
        row["valid"] = all(c.valid for c in group)
        rows.append(row)
    headers = ["config", "load", *(f"{role} µs" for role in roles), "total µs", "cores busy", "valid"]
    cells = [
        [str(r["config"]), str(r["load"])]
        + [f"{r[role]:.0f}" if role in r else "-" for role in [*roles, "total"]]
        + [f"{r['cores']:.2f}", "ok" if r["valid"] else "INVALID"]
        for r in rows
    ]
    print("\nCPU time per request (median of the rounds):\n" + rt.table(headers, cells, markdown))
    return rows


# --------------------------------------------------------------------------- memory


@dataclass
class Memory:
    """Resident memory of the server and its workers, kB, at one moment."""

    config: str
    moment: str
    rss_kb: int
    pss_kb: int | None  # None when smaps_rollup is not readable
    processes: list[dict[str, Any]] = field(default_factory=list)
    round: int = 1
    valid: bool = True
    note: str = ""


def kb_field(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def read_memory(root: int, config: str, moment: str) -> Memory:
    found: list[dict[str, Any]] = []
    for pid, role in rt.processes(root).items():
        rss = kb_field(Path(f"/proc/{pid}/status"), "VmRSS")
        if rss is not None:
            pss = kb_field(Path(f"/proc/{pid}/smaps_rollup"), "Pss")
            found.append({"pid": pid, "role": role, "rss_kb": rss, "pss_kb": pss})
    pss_values = [p["pss_kb"] for p in found]
    return Memory(
        config=config,
        moment=moment,
        rss_kb=sum(p["rss_kb"] for p in found),
        pss_kb=None if None in pss_values else sum(pss_values),
        processes=found,
    )


def measure_memory(
    server: Server,
    payloads: list[Payload],
    scripts: list[Path],
    args: argparse.Namespace,
    seen: Predictions,
    round_number: int,
) -> list[Memory]:
    """Memory once every model is ready; each model checked, then a short
    wrk burst on each (so every replica serves); memory again."""
    time.sleep(args.settle)
    ready = read_memory(server.pid, server.name, "ready")
    errors = []
    for payload, lua in zip(payloads, scripts, strict=True):
        error, predictions = rt.preflight(server.port, payload)
        if not error and predictions != seen[payload.name][1]:
            error = f"predictions differ from {seen[payload.name][0]}"
        out = rt.run_wrk(server.port, lua, args, args.warmup, payload.path)
        result = parse_burst(out, server.name, payload.name, error)
        if not result.valid:
            errors.append(f"{payload.name}: {result.note or 'non-2xx or socket errors'}")
    time.sleep(args.settle)
    served = read_memory(server.pid, server.name, "after requests")
    for memory in (ready, served):
        memory.round, memory.valid, memory.note = round_number, not errors, "; ".join(errors)
        each = ", ".join(f"{p['role']} {mib(p['rss_kb'])}" for p in memory.processes)
        print(
            f"[round {round_number}] [{server.name}] {memory.moment}: RSS {mib(memory.rss_kb)} MiB "
            f"({each}), PSS {mib(memory.pss_kb)} MiB" + ("" if memory.valid else f", INVALID {memory.note}"),
            flush=True,
        )
    return [ready, served]


def parse_burst(out: str, server: str, payload: str, error: str) -> Result:
    result = rt.parse_wrk(out, server, payload, error)
    print(f"    {payload}: {result.requests} requests, non-2xx {result.non_2xx}", flush=True)
    return result


def mib(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:,.0f}"


def memory_medians(samples: list[Memory]) -> list[Memory]:
    """Per configuration and moment, the round with the median PSS (RSS when
    PSS is unreadable); lower middle for an even count."""
    groups: dict[tuple[str, str], list[Memory]] = {}
    for sample in samples:
        groups.setdefault((sample.config, sample.moment), []).append(sample)
    summary = []
    for group in groups.values():
        ordered = sorted(group, key=lambda m: m.pss_kb if m.pss_kb is not None else m.rss_kb)
        notes = "; ".join(m.note for m in group if m.note)
        middle = ordered[(len(ordered) - 1) // 2]
        summary.append(replace(middle, round=0, valid=all(m.valid for m in group), note=notes))
    return summary


def report_memory(samples: list[Memory], markdown: bool) -> list[dict[str, object]]:
    summary = memory_medians(samples)
    rows = [
        [
            m.config,
            m.moment,
            mib(m.rss_kb),
            mib(m.pss_kb),
            " / ".join(mib(p["pss_kb"] if p["pss_kb"] is not None else p["rss_kb"]) for p in m.processes),
            "ok" if m.valid else f"INVALID {m.note}",
        ]
        for m in summary
    ]
    headers = ["config", "moment", "RSS MiB", "PSS MiB", "PSS per process MiB (server / workers)", "valid"]
    rounds = len({m.round for m in samples})
    print(f"\nmedian of {rounds} round(s):\n" + rt.table(headers, rows, markdown))
    by_key = {(m.config, m.moment): m for m in summary}
    ratio_rows: list[dict[str, object]] = []
    # replicas-all holds a replica of every model in every worker, replicas-1 one of each.
    extra_replicas = MEMORY_MODELS * (MEMORY_WORKERS - 1)
    for moment in ("ready", "after requests"):
        one, every = by_key.get(("replicas-1", moment)), by_key.get(("replicas-all", moment))
        if one is None or every is None:
            continue
        for kind, low, high in (("RSS", one.rss_kb, every.rss_kb), ("PSS", one.pss_kb, every.pss_kb)):
            if low and high:
                ratio_rows.append(
                    {
                        "moment": moment,
                        "memory": kind,
                        "replicas-1/replicas-all": low / high,
                        "MiB per extra replica": (high - low) / 1024 / extra_replicas,
                    }
                )
    cells = [
        [
            str(r["moment"]),
            str(r["memory"]),
            f"{r['replicas-1/replicas-all']:.2f}",
            f"{r['MiB per extra replica']:.0f}",
        ]
        for r in ratio_rows
    ]
    headers = ["moment", "memory", "replicas-1/replicas-all (medians)", "MiB per extra replica"]
    print("\n" + rt.table(headers, cells, markdown))
    return ratio_rows


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = rt.method_parser(__doc__)
    parser.set_defaults(ready_timeout=180)  # memory: eight replicas of a 45 MB forest
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument(
        "--scaling-connections", type=int, default=8, help="wrk -c of the scaling section and memory bursts"
    )
    parser.add_argument(
        "--cpu-probe",
        type=int,
        default=3,
        help="seconds of load after each measurement to count CPU time per request (0: none)",
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds of quiet before each memory reading"
    )
    args = parser.parse_args()
    args.only = rt.comma_list(parser, "--only", args.only, SECTIONS)
    return args


class Run:
    """One benchmark run: its options, folder, results and failures."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.python = Path(sys.executable)  # this script needs core's venv anyway
        self.failures: list[str] = []
        self.document: dict[str, Any] = {}
        self.valid = True

    def rounds(self, section: str, factories: dict[str, Callable[[Path], Server]]) -> Any:
        folder = self.workdir / f"rounds-{section}"
        folder.mkdir()
        return rt.server_rounds(
            list(factories), self.args.rounds, factories, folder, self.args.ready_timeout, self.failures
        )

    def record(self, key: str, results: list[Any]) -> None:
        self.document[key] = [asdict(r) for r in results]
        self.valid &= all(r.valid for r in results)

    def worker_configs(self, model_dir: Path, counts: Sequence[int]) -> dict[str, Callable[[Path], Server]]:
        """`workers-N`: `model_dir` served with `--parallel-workers N`, for each N in `counts`."""

        def config(workers: int) -> Callable[[Path], Server]:
            return lambda folder: workers_server(self.python, model_dir, folder, workers)

        return {f"workers-{n}": config(n) for n in counts}

    def publish(
        self,
        key: str,
        title: str,
        results: list[Result],
        payloads: list[Payload],
        pairs: list[tuple[str, str]],
    ) -> None:
        """Print a section's rounds, medians and ratios; keep them for --output."""
        if results:
            print(f"\n== {title}")
            self.document[f"{key}_ratios"] = rt.report(results, payloads, self.args.markdown, pairs)
            self.record(f"{key}_results", results)

    def publish_cpu(self, key: str, costs: list[CpuCost]) -> None:
        if costs:
            self.document[f"{key}_cpu"] = report_cpu(costs, self.args.markdown)
            self.record(f"{key}_cpu_rounds", costs)

    def probe(
        self, server: Server, label: str, round_number: int, run: Callable[[int], Result]
    ) -> list[CpuCost]:
        """CPU per request over `run(--cpu-probe seconds)` (none if --cpu-probe 0)."""
        if not self.args.cpu_probe:
            return []
        return [cpu_probe(server, label, lambda: run(self.args.cpu_probe), round_number)]

    def overhead(self, rest: bool, grpc: bool) -> None:
        args = self.args
        core_dir, artifact, iris = rt.prepare_model(args.model_dir.resolve(), self.workdir, [self.python])
        model = joblib.load(artifact)
        payload = rt.build_payloads(iris)[0]  # 1-row FP32
        lua = rt.write_lua(payload, self.workdir, 0)
        grpc_payload = gt.grpc_payloads(iris, typed=False)[0]
        body = self.workdir / "grpc-1-row.bin"
        body.write_bytes(grpc_payload.body)
        # The gRPC payload holds the same tensor as the REST one.
        rest_seen, grpc_seen = expected(model, payload), expected(model, payload, grpc_payload.name)
        factories = self.worker_configs(core_dir, (0, 1))
        rest_results: list[Result] = []
        grpc_results: list[Result] = []
        costs: list[CpuCost] = []
        for round_number, server in self.rounds("overhead", factories):
            if rest:
                rest_results += rt.measure(server, [payload], [lua], args, rest_seen, round_number)
                costs += self.probe(
                    server, f"REST {payload.name}", round_number, wrk_load(server, payload, lua, args)
                )
            if grpc:
                grpc_results += gt.measure_grpc(server, [grpc_payload], [body], args, grpc_seen, round_number)
                run = h2load_load(server, grpc_payload, body, args)
                costs += self.probe(server, f"gRPC {grpc_payload.name}", round_number, run)
        title = "(a) pool overhead, {}, iris 1-row FP32: 1 worker vs 0"
        self.publish("overhead", title.format("REST"), rest_results, [payload], OVERHEAD_PAIRS)
        self.publish("grpc_overhead", title.format("gRPC"), grpc_results, [grpc_payload], OVERHEAD_PAIRS)
        self.publish_cpu("overhead", costs)

    def scaling(self) -> None:
        args = self.args
        features, labels = load_iris(return_X_y=True)
        folder = self.workdir / "forest"
        folder.mkdir()
        forest = train_forest(features, labels, folder / "forest.joblib", **SCALING_FOREST)
        write_model(folder / "forest", "forest", folder / "forest.joblib")
        payload = replace(rt.build_payloads(features.tolist())[1], path=infer_path("forest"))
        lua = rt.write_lua(payload, self.workdir, 1)
        seen = expected(forest, payload)
        # Enough connections that both workers always have a request waiting.
        load = argparse.Namespace(**{**vars(args), "connections": args.scaling_connections})
        factories = self.worker_configs(folder / "forest", (1, 2, 0))
        results: list[Result] = []
        costs: list[CpuCost] = []
        for round_number, server in self.rounds("scaling", factories):
            results += rt.measure(server, [payload], [lua], load, seen, round_number)
            costs += self.probe(
                server, f"REST {payload.name}", round_number, wrk_load(server, payload, lua, load)
            )
        title = f"(b) scaling, 200-tree forest, 1000-row FP64, wrk -c{load.connections}: 2 workers vs 1"
        self.publish("scaling", title, results, [payload], SCALING_PAIRS)
        self.publish_cpu("scaling", costs)

    def memory(self) -> None:
        args = self.args
        features, labels = make_classification(**MEMORY_DATA)
        folder = self.workdir / "memory"
        folder.mkdir()
        artifact = folder / "big-forest.joblib"
        forest = train_forest(features, labels, artifact, **MEMORY_FOREST)
        self.document["memory_model"] = {
            "data": MEMORY_DATA,
            "forest": MEMORY_FOREST,
            "artifact_mb": round(artifact.stat().st_size / 1e6, 1),
            "nodes": int(sum(tree.tree_.node_count for tree in forest.estimators_)),
        }
        names = [f"forest-{i}" for i in range(MEMORY_MODELS)]
        for name in names:
            write_model(folder / "replicas-1" / name, name, artifact, replicas=1)
            write_model(folder / "replicas-all" / name, name, artifact)
        iris = load_iris().data.tolist()
        big = rt.build_payloads(iris)[1]
        payloads = [replace(big, name=f"{big.name} {name}", path=infer_path(name)) for name in names]
        scripts = [rt.write_lua(p, self.workdir, 20 + i) for i, p in enumerate(payloads)]
        seen: Predictions = {}
        for payload in payloads:
            seen |= expected(forest, payload)

        def factory(config: str) -> Callable[[Path], Server]:
            def build(f: Path) -> Server:
                server = workers_server(self.python, folder / config, f, MEMORY_WORKERS)
                return replace(server, name=config)

            return build

        load = argparse.Namespace(**{**vars(args), "connections": args.scaling_connections})
        samples: list[Memory] = []
        for round_number, server in self.rounds("memory", {c: factory(c) for c in MEMORY_CONFIGS}):
            samples += measure_memory(server, payloads, scripts, load, seen, round_number)
        model = self.document["memory_model"]
        print(
            f"\n== (d) memory, {MEMORY_MODELS} copies of a {MEMORY_FOREST['n_estimators']}-tree forest "
            f"({model['artifact_mb']} MB joblib, {model['nodes']:,} nodes), {MEMORY_WORKERS} workers"
        )
        self.document["memory_ratios"] = report_memory(samples, args.markdown)
        self.record("memory_results", samples)


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    load_before = rt.check_machine(gt.TOOLS)
    if load_before is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        run = Run(args, Path(tmp))
        if "overhead" in args.only or "grpc-overhead" in args.only:
            run.overhead("overhead" in args.only, "grpc-overhead" in args.only)
        if "scaling" in args.only:
            run.scaling()
        if "memory" in args.only:
            run.memory()
    elapsed = time.monotonic() - started
    print(f"\ntotal time: {elapsed:.0f} s, load average now {os.getloadavg()[0]:.2f}")
    if args.output:
        versions: dict[str, str | None] = {str(run.python): rt.sklearn_version(run.python)}
        facts = rt.run_facts(args, versions, load_before)
        wrk = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True)
        h2load = subprocess.run(["h2load", "--version"], check=False, capture_output=True, text=True)
        facts["method"] |= {
            "sections": args.only,
            "scaling_connections": args.scaling_connections,
            "wrk": wrk.stdout.splitlines()[0],
            "h2load": h2load.stdout.strip(),
            "load_average_after": os.getloadavg()[0],
        }
        document = facts | run.document | {"failed_to_start": run.failures, "elapsed_s": round(elapsed, 1)}
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if run.failures or not run.valid else 0


if __name__ == "__main__":
    sys.exit(main())
