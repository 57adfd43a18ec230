#!/usr/bin/env python3
"""What serving through Ray Serve costs: `core start DIR --on ray` (core-ray)
with 1 and 2 replicas of the iris model, against `core start DIR` (one
worker, core's default) on the same machine. Issue 20, point 6.

Same method as rest_throughput.py (see benchmarks/README.md): each server is
started alone on 127.0.0.1, once per round in an order that rotates between
rounds; the 1-row FP32 payload is checked once (HTTP 200, the same
predictions on every server), warmed up, then loaded with wrk; the medians
of the rounds and their ratios are the result. Two loads:

- throughput: wrk with `--connections` (16) for `--duration` seconds;
- latency: one connection (`wrk -t1 -c1`): the time a lone request takes,
  so that the difference to `core start` is what Ray's proxy and its hop to
  a replica add to each request.

`ray-bare` (ray_bare_app.py) is the reference for Ray's own share: the
least a Ray Serve app does in the same layout (an ingress behind Ray's HTTP
proxy, a handle call to a model deployment that predicts).

The Ray servers start a local Ray instance each (no RAY_ADDRESS), with
usage stats off; each replica reserves one CPU, the
ingress none. On 2 cores scaling is not the point: the cost per request is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import rest_throughput as rt
from rest_throughput import Result, Server

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SERVERS = ("core", "ray-1", "ray-2", "ray-bare")
RATIOS = (("ray-1", "core"), ("ray-2", "core"), ("ray-2", "ray-1"), ("ray-1", "ray-bare"))
# Set in this process's environment, which the servers inherit (Ray's own
# processes pass on only some of it, so the harness's check of a server's
# variables would not hold for them).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def model_folder(workdir: Path, replicas: int | None) -> Path:
    """examples/iris's model, with `parameters.extra.ray.num_replicas`."""
    folder = workdir / f"iris-{replicas or 'core'}"
    folder.mkdir()
    (folder / "model.joblib").write_bytes((REPO / "examples" / "iris" / "model.joblib").read_bytes())
    settings: dict[str, Any] = json.loads(json.dumps(rt.DEFAULT_MODEL_SETTINGS))
    if replicas is not None:
        settings["parameters"]["extra"] = {"ray": {"num_replicas": replicas}}
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


def factories(python: Path, workdir: Path) -> dict[str, Any]:
    folders = {"core": model_folder(workdir, None), "ray-1": model_folder(workdir, 1)}
    folders["ray-2"] = model_folder(workdir, 2)

    def core(folder: Path) -> Server:
        return rt.core_server(python, folders["core"], folder)

    def ray(replicas: int) -> Any:
        def build(folder: Path) -> Server:
            return rt.core_server(
                python, folders[f"ray-{replicas}"], folder, ["--on", "ray"], f"ray-{replicas}"
            )

        return build

    def bare(folder: Path) -> Server:
        port = rt.free_port()
        artifact = folders["core"] / "model.joblib"
        cmd = [str(python), str(HERE / "ray_bare_app.py"), "--model", str(artifact), "--port", str(port)]
        return Server("ray-bare", cmd, folder, port)

    return {"core": core, "ray-1": ray(1), "ray-2": ray(2), "ray-bare": bare}


def parse_args() -> argparse.Namespace:
    parser = rt.method_parser(__doc__)
    parser.add_argument(
        "--only", default=",".join(SERVERS), help=f"comma-separated subset of: {','.join(SERVERS)}"
    )
    parser.add_argument("--core-python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument("--skip-latency", action="store_true", help="only the throughput load")
    args = parser.parse_args()
    args.only = rt.comma_list(parser, "--only", args.only, SERVERS)
    return args


def main() -> int:
    args = parse_args()
    os.environ.update(RAY_ENV)
    load_before = rt.check_machine({"wrk": "wrk"})
    if load_before is None:
        return 2
    started = time.monotonic()
    payload = rt.build_payloads([[5.1, 3.5, 1.4, 0.2]])[0]  # the 1-row FP32 one
    results: list[Result] = []
    failures: list[str] = []
    seen: rt.Predictions = {}
    latency_args = argparse.Namespace(**{**vars(args), "threads": 1, "connections": 1})
    with tempfile.TemporaryDirectory(prefix="ray-throughput-") as temp:
        workdir = Path(temp)
        scripts = [rt.write_lua(payload, workdir, 0)]
        built = factories(args.core_python, workdir)
        for round_number, server in rt.server_rounds(
            args.only, args.rounds, built, workdir, args.ready_timeout, failures
        ):
            results += rt.measure(server, [payload], scripts, args, seen, round_number)
            if not args.skip_latency:
                lone = rt.measure(server, [payload], scripts, latency_args, seen, round_number)
                results += [replace(r, payload=f"{r.payload}, 1 connection") for r in lone]
    payloads = [payload, replace(payload, name=f"{payload.name}, 1 connection")]
    summary = rt.medians(results)
    rt.report(results, payloads, args.markdown, RATIOS)
    by_key = {(r.server, r.payload): r for r in summary}
    print("\nper request (medians):")
    for name, reference in (
        ("ray-1", "core"),
        ("ray-2", "core"),
        ("ray-bare", "core"),
        ("ray-1", "ray-bare"),
    ):
        for shown in payloads:
            this, other = by_key.get((name, shown.name)), by_key.get((reference, shown.name))
            if this and other and this.requests_per_s and other.requests_per_s:
                added = 1000 / this.requests_per_s - 1000 / other.requests_per_s
                print(f"  {name} vs {reference}, {shown.name}: {added:+.2f} ms of wall time per request")
    if args.output:
        document = rt.wrk_results_document(
            args, {}, load_before, results, failures, time.monotonic() - started
        )
        document["method"]["servers"] = {
            "core": "core start",
            "ray-1": "core start --on ray, 1 replica",
            "ray-2": "core start --on ray, 2 replicas",
            "ray-bare": "ray_bare_app.py, 1 replica",
        }
        args.output.write_text(json.dumps(document, indent=2))
    invalid = [r for r in results if not r.valid]
    return 1 if failures or invalid else 0


if __name__ == "__main__":
    sys.exit(main())
