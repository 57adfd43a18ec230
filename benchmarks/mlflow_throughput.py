#!/usr/bin/env python3
"""The MLflow runtime (`core_mlflow`) under load, against MLflow's own scoring
server and MLServer's MLflow runtime, measured in one run (issue 15, point 7).

The model: a scikit-learn `LogisticRegression` trained on iris as a DataFrame
with named columns, saved by this script with `mlflow.sklearn.save_model(...,
signature=infer_signature(X, y), pip_requirements=["scikit-learn"])` into a
temp dir. Every server serves that same saved folder:

- `core`: `core start FOLDER`, FOLDER holding a model-settings.json with
  `"implementation": "mlflow"`; core's defaults (one worker process).
- `core-in-process`: the same with `--parallel-workers 0`.
- `mlflow`: `mlflow models serve -m DIR --env-manager local -h 127.0.0.1 -p
  PORT`, MLflow's defaults (its scoring server on uvicorn, one worker), from
  the venv `benchmarks/.venvs/mlflow` (the full `mlflow` package), created on
  first use.
- `mlserver`: MLServer 1.7.1 with `mlserver_mlflow.MLflowRuntime` (1.7.1),
  from the venv `benchmarks/.venvs/mlserver-mlflow`, created on first use;
  MLServer's settings as in rest_throughput.py (`parallel_workers` 0, no
  debug).

Loads, 1 and 1000 rows (iris rows in dataset order, cycled), each a fixed
body POSTed by wrk (`-t2 -c16`, 2 s warm-up, then `--duration`):

- `invocations`: MLflow's scoring protocol, `POST /invocations` with
  `{"dataframe_split": {"columns": [...], "data": [[...], ...]}}` (core,
  mlflow, mlserver);
- `v2`: `POST /v2/models/iris/infer`, one FP64 tensor of shape [n] per column
  (core, mlserver).

Before each load every server answers one request with exactly the classes
the model predicts in this process. Every server is started and measured
alone, once per round, in an order that rotates every round; the report
gives every round's figures, the median round per server and load, and the
ratios of those medians. Reuses rest_throughput.py's helpers (server
start/stop, wrk and its parsing, CPU use, medians, tables). Runs under
core's venv (it saves the model with mlflow-skinny and scikit-learn):

    .venv/bin/python benchmarks/mlflow_throughput.py --markdown --output /tmp/mlflow.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_throughput as hf
import rest_throughput as rt
from rest_throughput import Payload, Predictions, Result, Server

SERVERS = ("core", "core-in-process", "mlflow", "mlserver")
# Not measured unless named in --only: MLflow's server with uvicorn's
# "standard" extras (uvloop, httptools) in its venv, which uvicorn then picks
# by itself; `pip install mlflow` brings neither, so `mlflow` runs asyncio and h11.
OPTIONAL_SERVERS = ("mlflow-standard",)
PROTOCOLS = ("invocations", "v2")
# What each server is measured on: MLflow's server has no V2 endpoint.
SERVES = {
    "core": PROTOCOLS,
    "core-in-process": PROTOCOLS,
    "mlflow": ("invocations",),
    "mlflow-standard": ("invocations",),
    "mlserver": PROTOCOLS,
}
ROWS = (1, 1000)
MODEL_NAME = rt.MODEL_NAME  # "iris"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
INVOCATIONS_PATH = "/invocations"
VENVS = rt.HERE / ".venvs"
MLFLOW_VENV = VENVS / "mlflow"
MLFLOW_STANDARD_VENV = VENVS / "mlflow-standard"
MLSERVER_VENV = VENVS / "mlserver-mlflow"
MLFLOW_VERSION = "3.18.0"
MLSERVER_REQUIREMENTS = ["mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop<0.22"]
# The full `mlflow` package's own requirements besides mlflow-skinny and
# mlflow-tracing (3.18.0 wheel metadata): installed when `pip install mlflow`
# cannot resolve as a whole (see ensure_mlflow_venv).
MLFLOW_SERVER_REQUIREMENTS = [
    "Flask-CORS<7",
    "Flask<4",
    "aiohttp>=3.7.0,<4",
    "alembic!=1.10.0,<2",
    "cryptography>=43.0.0,<51",
    "docker>=4.0.0,<8",
    "graphene<4",
    "gunicorn<27",
    "huey>=2.5.4,<4",
    "matplotlib<4",
    "pyarrow>=4.0.0,<27",
    "scipy<2",
    "sqlalchemy>=1.4.0,<3",
]
# Packages whose versions the results record, per venv.
REPORTED = [
    "mlflow",
    "mlflow-skinny",
    "mlserver",
    "mlserver-mlflow",
    "scikit-learn",
    "skops",
    "numpy",
    "pandas",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "orjson",
]
# Ratios reported, per row count: (numerator, denominator) as (server, protocol).
PAIRS = (
    (("core", "invocations"), ("mlflow", "invocations")),
    (("core", "v2"), ("mlflow", "invocations")),
    (("core-in-process", "invocations"), ("mlflow", "invocations")),
    (("core-in-process", "v2"), ("mlflow", "invocations")),
    (("core", "invocations"), ("mlserver", "invocations")),
    (("core", "v2"), ("mlserver", "v2")),
    (("core-in-process", "invocations"), ("mlserver", "invocations")),
    (("core-in-process", "v2"), ("mlserver", "v2")),
    (("mlserver", "invocations"), ("mlflow", "invocations")),
    (("core", "invocations"), ("mlflow-standard", "invocations")),
    (("core-in-process", "invocations"), ("mlflow-standard", "invocations")),
    (("mlflow-standard", "invocations"), ("mlflow", "invocations")),
)

# Runs under a venv's python: the versions of REPORTED that it has (None: absent).
VERSIONS_CODE = """
import importlib.metadata as m, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- venvs


def pip(python: Path, *args: str) -> bool:
    run = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], check=False)
    return run.returncode == 0


def ensure_venv(venv: Path, check: str, install: Callable[[Path], bool]) -> Path:
    """The venv's python, after creating the venv and `install(python)` unless
    `check` already passes in it."""
    python = venv / "bin" / "python"
    if not rt.python_ok(python, check):
        print(f"creating {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        if not install(python) or not rt.python_ok(python, check):
            sys.exit(f"error: could not install what {venv} needs (check: {check})")
    return python


def ensure_mlflow_venv(venv: Path, pins: list[str], extras: tuple[str, ...] = ()) -> Path:
    """`mlflow` (the full package, with its `models serve`) at MLFLOW_VERSION,
    with the model's scikit-learn, skops, numpy and pandas (`pins`).

    mlflow 3.18.0 requires mlflow-tracing==3.18.0; when the registry has no
    such release, `pip install mlflow==3.18.0` cannot resolve. Then:
    mlflow-skinny 3.18.0 (and its requirements), the mlflow 3.18.0 wheel
    without requirements (it ships the whole `mlflow` package, tracing
    included, over skinny's files of the same version), and the rest of
    mlflow's own requirements. `extras`: more packages, also imported by the check."""
    modules = ", ".join(["mlflow.pyfunc.scoring_server", "uvicorn", "sklearn", "skops", *extras])
    check = (
        f"import importlib.metadata as m, {modules}; "
        f"assert m.version('mlflow') == m.version('mlflow-skinny') == {MLFLOW_VERSION!r}"
    )

    def install(python: Path) -> bool:
        if pip(python, f"mlflow=={MLFLOW_VERSION}", *pins, *extras):
            return True
        print(f"`pip install mlflow=={MLFLOW_VERSION}` failed: mlflow-skinny + mlflow --no-deps", flush=True)
        return (
            pip(python, f"mlflow-skinny=={MLFLOW_VERSION}", *pins, *extras)
            and pip(python, "--no-deps", f"mlflow=={MLFLOW_VERSION}")
            and pip(python, *MLFLOW_SERVER_REQUIREMENTS, *pins, *extras)
        )

    return ensure_venv(venv, check, install)


def ensure_mlserver_venv(venv: Path, pins: list[str]) -> Path:
    check = (
        "import importlib.metadata as m, mlserver_mlflow, sklearn, skops; "
        "assert m.version('mlserver') == m.version('mlserver-mlflow') == '1.7.1'"
    )
    return ensure_venv(venv, check, lambda python: pip(python, *MLSERVER_REQUIREMENTS, *pins))


def versions(python: Path) -> dict[str, str | None]:
    run = subprocess.run(
        [str(python), "-c", VERSIONS_CODE, *REPORTED], check=True, capture_output=True, text=True
    )
    return {name: version for name, version in json.loads(run.stdout).items() if version}


# --------------------------------------------------------------------------- the model


@dataclass
class SavedModel:
    path: Path  # the MLflow model folder
    rows: list[list[float]]  # iris features, dataset order
    expected: dict[int, list[int]]  # row count -> the classes the model predicts
    mlmodel: str  # the MLmodel file


def save_model(root: Path) -> SavedModel:
    """Train and save the model as the brief says, in this process (core's venv)."""
    import warnings

    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = COLUMNS
    model = LogisticRegression(max_iter=1000).fit(features, target)
    path = root / "iris-mlflow"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infer_signature's hint about integer columns
        signature = infer_signature(features, target)
        mlflow.sklearn.save_model(model, str(path), signature=signature, pip_requirements=["scikit-learn"])
    rows = features.to_numpy().tolist()
    expected = {}
    for count in ROWS:
        frame = features.iloc[[i % len(rows) for i in range(count)]].reset_index(drop=True)
        expected[count] = [int(v) for v in model.predict(frame)]
    return SavedModel(path, rows, expected, (path / "MLmodel").read_text())


def body_rows(model: SavedModel, count: int) -> list[list[float]]:
    return [model.rows[i % len(model.rows)] for i in range(count)]


def build_payloads(model: SavedModel) -> dict[tuple[str, int], Payload]:
    def dumps(document: dict[str, Any]) -> bytes:
        return json.dumps(document, separators=(",", ":")).encode()

    payloads = {}
    for count in ROWS:
        rows = body_rows(model, count)
        split = {"dataframe_split": {"columns": COLUMNS, "data": rows}}
        payloads["invocations", count] = Payload(
            f"invocations {count}-row", count, dumps(split), INVOCATIONS_PATH
        )
        tensors = [
            {"name": column, "shape": [count], "datatype": "FP64", "data": [row[i] for row in rows]}
            for i, column in enumerate(COLUMNS)
        ]
        payloads["v2", count] = Payload(f"v2 {count}-row", count, dumps({"inputs": tensors}), rt.INFER_PATH)
    return payloads


# --------------------------------------------------------------------------- servers

# The path that tells a server is ready, by port: rest_throughput's `running`
# waits for /v2/health/ready, which MLflow's scoring server does not have
# (it answers /ping once the model is loaded: the app is built after the load).
READY_PATHS: dict[int, str] = {}
_wait_ready = rt.wait_ready


def wait_ready(proc: Any, port: int, timeout: float) -> None:
    path = READY_PATHS.get(port)
    if path is None:
        return _wait_ready(proc, port, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise rt.StartError(f"exited with code {proc.returncode}")
        with contextlib.suppress(OSError):
            if rt.http("GET", port, path, timeout=1)[0] == 200:
                return None
        time.sleep(0.2)
    raise rt.StartError(f"not ready after {timeout:.0f} s ({path})")


rt.wait_ready = wait_ready  # `running` looks it up at call time


def write_core_model(folder: Path, model: SavedModel) -> Path:
    settings = {"name": MODEL_NAME, "implementation": "mlflow", "parameters": {"uri": str(model.path)}}
    folder.mkdir(parents=True)
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


def mlflow_server(python: Path, model: SavedModel, folder: Path, name: str = "mlflow") -> Server:
    """`mlflow models serve`, as a user of that venv runs it: its bin on PATH
    (the command runs `uvicorn` from PATH, one worker by default)."""
    port = rt.free_port()
    READY_PATHS[port] = "/ping"
    cmd = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model.path)]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    path = os.pathsep.join([str(python.parent), os.environ.get("PATH", "")])
    return Server(name, cmd, folder, port, env={"PATH": path})


def mlserver_server(python: Path, model: SavedModel, folder: Path) -> Server:
    """rest_throughput's MLServer (same settings.json), serving the MLflow
    model with mlserver-mlflow's runtime."""
    server = rt.mlserver_server(python, model.path, folder)
    settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(model.path)},
    }
    (server.cwd / MODEL_NAME / "model-settings.json").write_text(json.dumps(settings))
    return server


# --------------------------------------------------------------------------- checks


def make_check(
    model: SavedModel, documents: dict[str, tuple[str, Any]]
) -> Callable[[Server], Callable[[int, Payload], tuple[str, list[object] | None]]]:
    """The check of one request per load: HTTP 200 and exactly the classes
    the model predicts in this process. `/invocations` answers must also be
    the same JSON document as the first server's (MLflow's, when it starts
    first); a difference is printed, not counted against the row."""

    def for_server(server: Server) -> Callable[[int, Payload], tuple[str, list[object] | None]]:
        def check(port: int, payload: Payload) -> tuple[str, list[object] | None]:
            try:
                status, body = rt.http("POST", port, payload.path, payload.body, timeout=60)
            except OSError as exc:
                return f"request failed: {exc}", None
            if status != 200:
                return f"HTTP {status}: {body[:200]!r}", None
            try:
                document = json.loads(body)
                if payload.path == INVOCATIONS_PATH:
                    predictions = list(document["predictions"])
                else:
                    predictions = list(document["outputs"][0]["data"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return f"malformed response ({exc!r}): {body[:200]!r}", None
            if predictions != model.expected[payload.rows]:
                return f"predictions differ from the model's: {body[:120]!r}", predictions
            if payload.path == INVOCATIONS_PATH:
                first, reference = documents.setdefault(payload.name, (server.name, document))
                if document != reference:
                    print(
                        f"note: [{server.name}] {payload.name}: response {body[:120]!r} is not "
                        f"{first}'s {json.dumps(reference)[:120]!r}",
                        flush=True,
                    )
            return "", predictions

        return check

    return for_server


# --------------------------------------------------------------------------- reporting


def ratios(results: list[Result], payloads: dict[tuple[str, int], Payload]) -> list[dict[str, Any]]:
    """PAIRS per row count, where both sides were measured."""
    by = {(r.server, r.payload): r.requests_per_s for r in results}
    out = []
    for count in ROWS:
        for (name, protocol), (ref, ref_protocol) in PAIRS:
            if (protocol, count) not in payloads or (ref_protocol, count) not in payloads:
                continue
            this = by.get((name, payloads[protocol, count].name))
            other = by.get((ref, payloads[ref_protocol, count].name))
            if this is not None and other:
                out.append(
                    {
                        "rows": count,
                        "ratio": f"{name} {protocol} / {ref} {ref_protocol}",
                        "value": this / other,
                    }
                )
    return out


def ratio_table(
    results: list[Result], payloads: dict[tuple[str, int], Payload], markdown: bool
) -> tuple[str, list[dict[str, Any]]]:
    """Each ratio per round and of the medians."""
    per_round: dict[tuple[int, str], list[str]] = {}
    for number in sorted({r.round for r in results}):
        for row in ratios([r for r in results if r.round == number], payloads):
            per_round.setdefault((row["rows"], row["ratio"]), []).append(f"{row['value']:.2f}")
    of_medians = ratios(rt.medians(results), payloads)
    rows = [
        [
            f"{row['rows']}-row",
            row["ratio"],
            ", ".join(per_round[row["rows"], row["ratio"]]),
            f"**{row['value']:.2f}**",
        ]
        for row in of_medians
    ]
    return rt.table(["rows", "req/s ratio", "per round", "of the medians"], rows, markdown), of_medians


def plugin_state() -> str:
    """The plugin is measured as it is on disk (maybe uncommitted): a digest
    of its source files, to tell runs apart."""
    digest = hashlib.sha256()
    for path in sorted((rt.REPO / "plugins" / "mlflow" / "src").rglob("*.py")):
        digest.update(str(path.relative_to(rt.REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = rt.method_parser(__doc__)
    parser.set_defaults(duration=8)
    parser.add_argument(
        "--only",
        default=",".join(SERVERS),
        help=f"comma-separated servers, in this order (default: {','.join(SERVERS)}; "
        f"also: {','.join(OPTIONAL_SERVERS)})",
    )
    parser.add_argument(
        "--protocols",
        default=",".join(PROTOCOLS),
        help=f"comma-separated subset of: {','.join(PROTOCOLS)} (default: both)",
    )
    parser.add_argument(
        "--rows", default=",".join(map(str, ROWS)), help="comma-separated subset of: 1,1000 (default: both)"
    )
    parser.add_argument(
        "--core-python", type=Path, default=rt.REPO / ".venv" / "bin" / "python", help="python running core"
    )
    args = parser.parse_args()
    args.only = rt.comma_list(parser, "--only", args.only, (*SERVERS, *OPTIONAL_SERVERS))
    args.protocols = rt.comma_list(parser, "--protocols", args.protocols, PROTOCOLS)
    args.rows = [int(n) for n in rt.comma_list(parser, "--rows", args.rows, [str(n) for n in ROWS])]
    return args


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    if any(name.startswith("core") for name in args.only) and (
        reason := rt.core_skip_reason(args.core_python)
    ):
        print(f"error: {reason}", file=sys.stderr)
        return 2
    load_before = rt.check_machine({"wrk": "wrk"})
    if load_before is None:
        return 2
    print(f"load average at start: {load_before:.2f}, {os.cpu_count()} CPUs", flush=True)

    core_versions = versions(args.core_python)
    # The model's framework versions, in every venv that loads it.
    pins = [f"{name}=={core_versions[name]}" for name in ("scikit-learn", "skops", "numpy", "pandas")]
    pythons = {"core": args.core_python}
    if "mlflow" in args.only:
        pythons["mlflow"] = ensure_mlflow_venv(MLFLOW_VENV, pins)
    if "mlflow-standard" in args.only:
        standard = tuple(f"{name}=={core_versions[name]}" for name in ("uvloop", "httptools"))
        pythons["mlflow-standard"] = ensure_mlflow_venv(
            MLFLOW_STANDARD_VENV, [*pins, *standard], ("uvloop", "httptools")
        )
    if "mlserver" in args.only:
        pythons["mlserver"] = ensure_mlserver_venv(MLSERVER_VENV, pins)
    environment = {name: versions(python) for name, python in pythons.items()}
    for name, found in environment.items():
        print(f"{name} ({pythons[name]}): " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    commit, plugin = rt.git_state(rt.REPO), plugin_state()
    print(f"commit {commit or '?'}, plugins/mlflow/src digest {plugin}", flush=True)

    failures: list[str] = []
    results: list[Result] = []
    documents: dict[str, tuple[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlflow-bench-") as tmp:
        workdir = Path(tmp)
        model = save_model(workdir)
        print(f"model saved in {model.path}: {', '.join(sorted(p.name for p in model.path.iterdir()))}")
        core_dir = write_core_model(workdir / "core-model", model)
        payloads = {
            key: p
            for key, p in build_payloads(model).items()
            if key[0] in args.protocols and key[1] in args.rows
        }
        scripts = {
            key: rt.write_lua(p, workdir, i, path=p.path) for i, (key, p) in enumerate(payloads.items())
        }
        factories: dict[str, Callable[[Path], Server]] = {
            "core": lambda folder: rt.core_server(args.core_python, core_dir, folder),
            "core-in-process": lambda folder: rt.core_server(
                args.core_python, core_dir, folder, rt.IN_PROCESS, "core-in-process"
            ),
            "mlflow": lambda folder: mlflow_server(pythons["mlflow"], model, folder),
            "mlflow-standard": lambda folder: mlflow_server(
                pythons["mlflow-standard"], model, folder, "mlflow-standard"
            ),
            "mlserver": lambda folder: mlserver_server(pythons["mlserver"], model, folder),
        }
        checks = make_check(model, documents)
        seen: Predictions = {}
        rounds = rt.server_rounds(args.only, args.rounds, factories, workdir, args.ready_timeout, failures)
        for round_number, server in rounds:
            keys = [key for key in payloads if key[0] in SERVES[server.name]]
            results += rt.measure(
                server,
                [payloads[key] for key in keys],
                [scripts[key] for key in keys],
                args,
                seen,
                round_number,
                checks(server),
            )

    load_after = os.getloadavg()[0]
    print(f"\nload average: {load_before:.2f} at start, {load_after:.2f} at end")
    print("\nrequests/s per round:\n" + hf.per_round_table(results, args.markdown))
    summary = rt.medians(results)
    rows = [[r.server, r.payload, *rt.result_cells(r)] for r in summary]
    headers = ["server", "load", *rt.RESULT_HEADERS]
    print("\nmedian round per server and load:\n" + rt.table(headers, rows, args.markdown))
    text, ratio_rows = ratio_table(results, payloads, args.markdown)
    print("\nratios per round and of the medians:\n" + text)
    elapsed = time.monotonic() - started
    print(f"\ntotal time: {elapsed:.0f} s")
    if args.output:
        document = rt.wrk_results_document(args, {}, load_before, results, failures, elapsed)
        document["method"] |= {
            "servers": args.only,
            "protocols": args.protocols,
            "rows": args.rows,
            "commit": commit,
            "plugin_digest": plugin,
        }
        document["environment"] |= {"load_average_after": load_after, "venvs": environment}
        document |= {"ratios_of_medians": ratio_rows, "mlmodel": model.mlmodel}
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    valid = all(r.valid for r in results)
    return 1 if failures or not valid else 0


if __name__ == "__main__":
    sys.exit(main())
