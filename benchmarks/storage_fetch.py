#!/usr/bin/env python3
"""Time to fetch a model from S3: core's `core.storage.fetch` against
KServe's `kserve-storage` 0.21 (`Storage.download_files`), cold and warm,
measured in one run against one local S3 server.

The store: moto_server (core's venv, `moto[server]`) started by this script
on a free loopback port, stopped by its PID at the end. One bucket holds a
model under a prefix, `models/big/`: `model.bin` (`--size-mb` MB of random
bytes, one object, uploaded as `aws s3 cp` would: boto3's `upload_file`,
multipart in 8 MiB parts; `--upload single` puts it in one part) and a
small `model-settings.json`. Both clients fetch the URI
`s3://BUCKET/models/big`; neither checks more than sizes (core takes no
S3 ETag for an MD5).

Every fetch is a fresh process, as a server start is, with only the S3
variables set (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...):

- `core cold`: `fetch(uri, core.Settings(storage_cache_dir=NEW_EMPTY_DIR))`
  under core's python; core's download defaults (8 workers, 16 MiB ranges)
  unless `--chunk-mb` / `--workers` say otherwise.
- `core warm`: the same, again, with that cache dir: the objects are
  listed, found unchanged, and served from the cache.
- `kserve cold`: `Storage.download_files([uri], [NEW_EMPTY_DIR])` under the
  python of `benchmarks/.venvs/kserve-storage` (created on first use with
  `python3 -m venv` and `pip install kserve-storage==0.21.0`).
- `kserve warm`: the same into another new folder. kserve-storage keeps no
  cache: its second fetch downloads everything again.

The time measured is the fetch call's, inside the process (`perf_counter`
around the call; the interpreter's start and the import of `core` or
`kserve_storage` are reported apart, as `process`). Before each fetch the
script runs `sync` so that no write-back of the previous one is pending.
After each, the fetched `model.bin` and `model-settings.json` must be
byte for byte the uploaded ones (SHA-256), or the row is INVALID.

Each of `--rounds` rounds measures core cold, core warm, kserve cold, kserve
warm, the two clients' order alternating from round to round. The report
gives every round, the median per measurement, and the ratios of the medians
kserve-storage / core (above 1: core is faster). Targets: cold >= 1, warm
(kserve's second download against core's cache) >= 10.

`--mode in-process` (or `--in-process`) measures the same four fetches the
way a running server fetches a model (its registry calls `fetch` for a
model's `parameters.uri`): each client runs in ONE long-lived worker
process, started before the first round under the same python, with the
same variables, that imports `core` (or `kserve_storage`) and fetches a
small object, `warmup/model.bin` (1 MB), once, untimed; then it reads one
JSON command per line on stdin and times only the call (`perf_counter`
around `fetch(uri, core.Settings(storage_cache_dir=DIR))`, DIR new for
cold and the same for warm, or around `Storage.download_files([uri],
[NEW_DIR])`), and the CPU time of the worker and its children over it. The
rounds, the order, `sync`, the checks and the report are the per-process
mode's. `--mode both` runs the two modes in every round, per-process first,
against the same server and object, and reports each.

    .venv/bin/python benchmarks/storage_fetch.py --markdown --output /tmp/storage-fetch.json
    .venv/bin/python benchmarks/storage_fetch.py --mode both --markdown --output /tmp/storage-fetch.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import rest_throughput as rt

KSERVE_VENV = rt.HERE / ".venvs" / "kserve-storage"
KSERVE_VERSION = "0.21.0"
BUCKET = "storage-fetch-benchmark"
PREFIX = "models/big"
ARTIFACT = "model.bin"
SETTINGS = "model-settings.json"
MEASUREMENTS = ("core cold", "core warm", "kserve cold", "kserve warm")
MODES = ("process", "in-process")
WARMUP_PREFIX = "warmup"  # --in-process: the small object each worker fetches once, untimed
WARMUP_SIZE = 1_000_000
MiB = 1024 * 1024
# Loopback only, whatever proxy the environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Run in a fresh process under core's python: argv URI CACHE_DIR SETTINGS_JSON.
CORE_CODE = """
import json, sys, time
started = time.perf_counter()
import core
from core.plugins.manager import get_plugin_manager
from core.storage import fetch
imported = time.perf_counter()
settings = core.Settings(storage_cache_dir=sys.argv[2], **json.loads(sys.argv[3]))
get_plugin_manager()  # what fetch() does first (storage_for): timed apart, counted in fetch_s
discovered = time.perf_counter()
fetched = fetch(sys.argv[1], settings)
done = time.perf_counter()
print(json.dumps({"import_s": imported - started, "fetch_s": done - imported,
                  "plugins_s": discovered - imported, "path": str(fetched.path),
                  "downloaded": fetched.downloaded, "cache_hit": fetched.cache_hit}))
"""

# Run in a fresh process under kserve-storage's python: argv URI OUT_DIR.
KSERVE_CODE = """
import json, sys, time
started = time.perf_counter()
from kserve_storage import Storage
imported = time.perf_counter()
(path,) = Storage.download_files([sys.argv[1]], [sys.argv[2]])
done = time.perf_counter()
print(json.dumps({"import_s": imported - started, "fetch_s": done - imported, "path": path}))
"""

# --in-process: a long-lived worker under core's python, argv SETTINGS_JSON. It
# answers one JSON line on its stdout (a copy of fd 1; fd 1 itself goes to
# stderr, for whatever else prints) when imported, then one per command: a
# JSON line {"uri", "dir"} on stdin.
CORE_WORKER_CODE = """
import json, os, resource, sys, time
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
started = time.perf_counter()
import core
from core.storage import fetch
print(json.dumps({"import_s": time.perf_counter() - started}), file=reply, flush=True)
extra = json.loads(sys.argv[1])

def cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

for line in sys.stdin:
    command = json.loads(line)
    settings = core.Settings(storage_cache_dir=command["dir"], **extra)
    try:
        cpu_before, before = cpu(), time.perf_counter()
        fetched = fetch(command["uri"], settings)
        after, cpu_after = time.perf_counter(), cpu()
        answer = {"fetch_s": after - before, "cpu_s": cpu_after - cpu_before, "path": str(fetched.path),
                  "downloaded": fetched.downloaded, "cache_hit": fetched.cache_hit}
    except Exception as error:
        answer = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(answer), file=reply, flush=True)
"""

# --in-process: the same under kserve-storage's python (no argv).
KSERVE_WORKER_CODE = """
import json, os, resource, sys, time
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
started = time.perf_counter()
from kserve_storage import Storage
print(json.dumps({"import_s": time.perf_counter() - started}), file=reply, flush=True)

def cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

for line in sys.stdin:
    command = json.loads(line)
    try:
        cpu_before, before = cpu(), time.perf_counter()
        (path,) = Storage.download_files([command["uri"]], [command["dir"]])
        after, cpu_after = time.perf_counter(), cpu()
        answer = {"fetch_s": after - before, "cpu_s": cpu_after - cpu_before, "path": path}
    except Exception as error:
        answer = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(answer), file=reply, flush=True)
"""

VERSIONS_CODE = """
import importlib.metadata as m, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


@dataclass
class Fetch:
    round: int
    name: str  # one of MEASUREMENTS
    fetch_s: float  # the fetch call, in its process
    process_s: float | None  # the whole process: interpreter, imports, fetch (in-process: None)
    client_cpu_s: float  # user + system CPU of the process and its children (in-process: over the call)
    moto_cpu_s: float  # of moto_server over the same time
    plugins_s: float | None = None  # core only: its plugin discovery, part of fetch_s
    own_s: float | None = None  # fetch_s less plugins_s (kserve: fetch_s)
    cache_hit: bool | None = None  # core only
    valid: bool = True
    note: str = ""
    mode: str = "process"  # one of MODES


# --------------------------------------------------------------------------- setup


def ensure_kserve_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    check = (
        "import importlib.metadata as m, kserve_storage, boto3; "
        f"assert m.version('kserve-storage') == {KSERVE_VERSION!r}"
    )
    if not rt.python_ok(python, check):
        print(f"creating {venv} (pip install kserve-storage=={KSERVE_VERSION}) ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", f"kserve-storage=={KSERVE_VERSION}"]
        subprocess.run(pip, check=True)
        if not rt.python_ok(python, check):
            sys.exit(f"error: {venv} does not import kserve_storage {KSERVE_VERSION} and boto3")
    return python


def versions(python: Path, names: list[str]) -> dict[str, str]:
    run = subprocess.run(
        [str(python), "-c", VERSIONS_CODE, *names], check=True, capture_output=True, text=True
    )
    return dict(json.loads(run.stdout))


class Moto:
    """moto_server on a free loopback port, in a session of its own."""

    def __init__(self, script: Path, log: Path) -> None:
        self.port = rt.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [str(script), "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}: see {log}")
            try:
                with _OPENER.open(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer within 60 s: see {log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the PID this script started, SIGKILL after 10 s."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class Worker:
    """--in-process: one client's long-lived fetching process (CORE_WORKER_CODE,
    KSERVE_WORKER_CODE), in a session of its own; stderr to `log`."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.import_s: float = self._answer()["import_s"]

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self._log.flush()
            raise RuntimeError(f"{self.name} worker exited with {code}:\n{rt.log_tail(self.log)}")
        return dict(json.loads(line))

    def fetch(self, uri: str, folder: Path) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"uri": uri, "dir": str(folder)}) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def stop(self) -> None:
        """End of stdin ends its loop; SIGKILL to the PID this script started after 10 s."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def s3_env(moto: Moto) -> dict[str, str]:
    """What both clients read (KServe's names); nothing else of the caller's AWS_* or S3_*."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "S3_", "CORE_", "STORAGE_")) and name != "awsAnonymousCredential"
    }
    return {
        **inherited,
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def upload(moto: Moto, size: int, single: bool, workdir: Path) -> dict[str, str]:
    """The model under PREFIX; the SHA-256 of each file, by name."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    artifact = workdir / ARTIFACT
    with artifact.open("wb") as file:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MiB))
            file.write(block)
            left -= len(block)
    settings = json.dumps({"name": "big", "implementation": "none", "parameters": {"uri": f"./{ARTIFACT}"}})
    (workdir / SETTINGS).write_text(settings)
    client = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    if single:
        with artifact.open("rb") as file:
            client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{ARTIFACT}", Body=file)
    else:
        client.upload_file(str(artifact), BUCKET, f"{PREFIX}/{ARTIFACT}", Config=TransferConfig())
    client.upload_file(str(workdir / SETTINGS), BUCKET, f"{PREFIX}/{SETTINGS}")
    etag = client.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{ARTIFACT}")["ETag"]
    print(f"uploaded s3://{BUCKET}/{PREFIX}/{ARTIFACT}: {size:,} bytes, ETag {etag}", flush=True)
    digests = {name: sha256(workdir / name) for name in (ARTIFACT, SETTINGS)}
    artifact.unlink()
    return digests


def upload_warmup(moto: Moto, workdir: Path) -> dict[str, str]:
    """--in-process: WARMUP_PREFIX/ARTIFACT, WARMUP_SIZE random bytes; its SHA-256, by name."""
    import boto3

    artifact = workdir / "warmup.bin"
    artifact.write_bytes(os.urandom(WARMUP_SIZE))
    client = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.upload_file(str(artifact), BUCKET, f"{WARMUP_PREFIX}/{ARTIFACT}")
    digests = {ARTIFACT: sha256(artifact)}
    artifact.unlink()
    return digests


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- measuring


def run_fetch(
    number: int, name: str, command: list[str], env: dict[str, str], moto: Moto, digests: dict[str, str]
) -> tuple[Fetch, dict[str, Any]]:
    os.sync()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    moto_before = rt.cpu_seconds(moto.pid)
    started = time.perf_counter()
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - started
    moto_cpu = rt.cpu_seconds(moto.pid) - moto_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        print(f"  [{name}] FAILED (exit {run.returncode}):\n{tail}", flush=True)
        return Fetch(number, name, float("nan"), process_s, client_cpu, moto_cpu, valid=False,
                     note=f"exit {run.returncode}"), {}  # fmt: skip
    result = json.loads(run.stdout.strip().splitlines()[-1])
    problems = verify(Path(result["path"]), digests)
    row = Fetch(
        number,
        name,
        result["fetch_s"],
        process_s,
        client_cpu,
        moto_cpu,
        plugins_s=result.get("plugins_s"),
        own_s=result["fetch_s"] - result.get("plugins_s", 0.0),
        cache_hit=result.get("cache_hit"),
        valid=not problems,
        note="; ".join(problems),
    )
    if name.startswith("core") and result["cache_hit"] != name.endswith("warm"):
        row.valid, row.note = False, f"cache_hit={result['cache_hit']}"
    return row, result


def verify(fetched: Path, digests: dict[str, str]) -> list[str]:
    """What differs between the folder a client returned and the upload."""
    problems = []
    for file, digest in digests.items():
        path = fetched / file
        if not path.is_file():
            problems.append(f"{file} missing")
        elif sha256(path) != digest:
            problems.append(f"{file} differs")
    return problems


def show(row: Fetch) -> None:
    flag = "" if row.valid else f"  INVALID ({row.note})"
    process = "" if row.process_s is None else f"  process {row.process_s:7.3f} s"
    print(
        f"  round {row.round} {row.name:<11} fetch {row.fetch_s:7.3f} s{process}  "
        f"cpu {row.client_cpu_s:6.2f} s  moto cpu {row.moto_cpu_s:6.2f} s{flag}",
        flush=True,
    )


def core_settings(args: argparse.Namespace) -> dict[str, int]:
    settings = {}
    if args.chunk_mb:
        settings["storage_chunk_size"] = args.chunk_mb * MiB
    if args.workers:
        settings["storage_download_workers"] = args.workers
    return settings


def one_round(
    number: int,
    args: argparse.Namespace,
    pythons: dict[str, Path],
    env: dict[str, str],
    moto: Moto,
    digests: dict[str, str],
    workdir: Path,
) -> list[Fetch]:
    uri = f"s3://{BUCKET}/{PREFIX}"
    folder = workdir / f"round-{number}"
    folder.mkdir()
    cache = folder / "core-cache"
    core_command = [str(pythons["core"]), "-c", CORE_CODE, uri, str(cache), json.dumps(core_settings(args))]

    def kserve(name: str) -> list[str]:
        return [str(pythons["kserve"]), "-c", KSERVE_CODE, uri, str(folder / name)]

    plans = {
        "core": [("core cold", core_command), ("core warm", core_command)],
        "kserve": [("kserve cold", kserve("kserve-1")), ("kserve warm", kserve("kserve-2"))],
    }
    order = ["core", "kserve"] if number % 2 else ["kserve", "core"]
    rows = []
    for client in order:
        for name, command in plans[client]:
            row, _ = run_fetch(number, name, command, env, moto, digests)
            rows.append(row)
            show(row)
        if client == "kserve":  # its two copies are done with: room for the next ones
            for name in ("kserve-1", "kserve-2"):
                shutil.rmtree(folder / name, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def start_workers(
    args: argparse.Namespace,
    pythons: dict[str, Path],
    env: dict[str, str],
    moto: Moto,
    workdir: Path,
    workers: dict[str, Worker],
) -> dict[str, dict[str, float]]:
    """--in-process: each client's worker, into `workers` as it starts, and its
    untimed warm-up fetch of WARMUP_PREFIX; their times, by client."""
    digests = upload_warmup(moto, workdir)
    commands = {
        "core": [str(pythons["core"]), "-c", CORE_WORKER_CODE, json.dumps(core_settings(args))],
        "kserve": [str(pythons["kserve"]), "-c", KSERVE_WORKER_CODE],
    }
    started = {}
    for client, command in commands.items():
        worker = Worker(client, command, env, workdir / f"{client}-worker.log")
        workers[client] = worker
        answer = worker.fetch(f"s3://{BUCKET}/{WARMUP_PREFIX}", workdir / "warmup" / client)
        problems = [answer["error"]] if "error" in answer else verify(Path(answer["path"]), digests)
        if problems:
            raise RuntimeError(f"{client} worker's warm-up fetch: {'; '.join(problems)}")
        started[client] = {"import_s": worker.import_s, "warmup_fetch_s": answer["fetch_s"]}
        print(
            f"{client} worker pid {worker.pid}: import {worker.import_s:.3f} s, "
            f"warm-up fetch ({WARMUP_SIZE:,} bytes, untimed in the results) {answer['fetch_s']:.3f} s",
            flush=True,
        )
    return started


def in_process_round(
    number: int, workers: dict[str, Worker], moto: Moto, digests: dict[str, str], workdir: Path
) -> list[Fetch]:
    """One round of --in-process: the per-process round's fetches and order,
    each a command to its client's worker."""
    uri = f"s3://{BUCKET}/{PREFIX}"
    folder = workdir / f"in-process-round-{number}"
    folder.mkdir()
    plans = {
        "core": [("core cold", folder / "core-cache"), ("core warm", folder / "core-cache")],
        "kserve": [("kserve cold", folder / "kserve-1"), ("kserve warm", folder / "kserve-2")],
    }
    order = ["core", "kserve"] if number % 2 else ["kserve", "core"]
    rows = []
    for client in order:
        for name, target in plans[client]:
            os.sync()
            moto_before = rt.cpu_seconds(moto.pid)
            answer = workers[client].fetch(uri, target)
            moto_cpu = rt.cpu_seconds(moto.pid) - moto_before
            if "error" in answer:
                print(f"  [{name}] FAILED: {answer['error']}", flush=True)
                row = Fetch(number, name, float("nan"), None, float("nan"), moto_cpu, valid=False,
                            note=answer["error"], mode="in-process")  # fmt: skip
            else:
                problems = verify(Path(answer["path"]), digests)
                row = Fetch(
                    number,
                    name,
                    answer["fetch_s"],
                    None,
                    answer["cpu_s"],
                    moto_cpu,
                    own_s=answer["fetch_s"],
                    cache_hit=answer.get("cache_hit"),
                    valid=not problems,
                    note="; ".join(problems),
                    mode="in-process",
                )
                if client == "core" and answer["cache_hit"] != name.endswith("warm"):
                    row.valid, row.note = False, f"cache_hit={answer['cache_hit']}"
            rows.append(row)
            show(row)
        if client == "kserve":
            for name in ("kserve-1", "kserve-2"):
                shutil.rmtree(folder / name, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------- reporting


def median(rows: list[Fetch], name: str, field: str = "fetch_s") -> float:
    values = [getattr(row, field) for row in rows if row.name == name and row.valid]
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else float("nan")


# (label, numerator, denominator, the times compared, target); the ratios of
# `own_s` leave core's plugin discovery out: `core start` pays it once
# whether or not it fetches (the server discovers the same plugins).
RATIOS = (
    ("cold: kserve cold / core cold", "kserve cold", "core cold", "fetch_s", 1.0),
    ("warm: kserve warm / core warm", "kserve warm", "core warm", "fetch_s", 10.0),
    ("cold, core less plugin discovery", "kserve cold", "core cold", "own_s", None),
    ("warm, core less plugin discovery", "kserve warm", "core warm", "own_s", None),
)


def report(
    rows: list[Fetch], rounds: int, markdown: bool, mode: str = "process"
) -> tuple[str, dict[str, Any]]:
    per_round = [
        [name, *(f"{row.fetch_s:.3f}" for row in rows if row.name == name), f"**{median(rows, name):.3f}**"]
        for name in MEASUREMENTS
    ]
    headers = ["fetch s", *(f"round {n}" for n in range(1, rounds + 1)), "median"]
    text = "fetch time per round (s):\n" + rt.table(headers, per_round, markdown)
    if mode == "process":
        detail = [
            [
                name,
                f"{median(rows, name):.3f}",
                "-" if name.startswith("kserve") else f"{median(rows, name, 'plugins_s'):.3f}",
                f"{median(rows, name, 'process_s'):.3f}",
                f"{median(rows, name, 'client_cpu_s'):.2f}",
                f"{median(rows, name, 'moto_cpu_s'):.2f}",
            ]
            for name in MEASUREMENTS
        ]
        text += (
            "\n\nmedians (s): fetch, of which core's plugin discovery, whole process, client CPU, "
            "moto_server CPU:\n"
        ) + rt.table(
            ["measurement", "fetch", "plugins", "process", "client CPU", "moto CPU"], detail, markdown
        )
    else:  # no process to time; core's plugins were discovered at the warm-up
        detail = [
            [
                name,
                f"{median(rows, name):.3f}",
                f"{median(rows, name, 'client_cpu_s'):.2f}",
                f"{median(rows, name, 'moto_cpu_s'):.2f}",
            ]
            for name in MEASUREMENTS
        ]
        text += (
            "\n\nmedians (s): fetch, CPU of the worker and its children over it, moto_server CPU:\n"
        ) + rt.table(["measurement", "fetch", "client CPU", "moto CPU"], detail, markdown)
    ratio_rows = []
    summary = {}
    for label, numerator, denominator, field, target in RATIOS:
        if mode != "process" and field != "fetch_s":
            continue
        rounds_ratios = []
        for number in range(1, rounds + 1):
            this = [r for r in rows if r.round == number]
            a, b = median(this, numerator, field), median(this, denominator, field)
            rounds_ratios.append(a / b if b else float("nan"))
        value = median(rows, numerator, field) / median(rows, denominator, field)
        summary[label] = {"per_round": rounds_ratios, "of_medians": value, "target": target}
        verdict = "" if target is None else ("met" if value >= target else "NOT met")
        ratio_rows.append(
            [
                label,
                ", ".join(f"{v:.2f}" for v in rounds_ratios),
                f"**{value:.2f}**",
                "-" if target is None else f">= {target:g}",
                verdict,
            ]
        )
    text += "\n\nratios (above 1: core faster):\n" + rt.table(
        ["ratio", "per round", "of the medians", "target", ""], ratio_rows, markdown
    )
    return text, summary


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--size-mb", type=int, default=200, help="model.bin size in MB (10^6 bytes; default 200)"
    )
    parser.add_argument(
        "--upload",
        choices=["multipart", "single"],
        default="multipart",
        help="how model.bin is uploaded: boto3 upload_file, 8 MiB parts (default), or one put_object",
    )
    parser.add_argument("--chunk-mb", type=int, help="core's storage_chunk_size in MiB (default: core's)")
    parser.add_argument("--workers", type=int, help="core's storage_download_workers (default: core's)")
    parser.add_argument(
        "--core-python", type=Path, default=rt.REPO / ".venv" / "bin" / "python", help="python running core"
    )
    parser.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="process",
        help="process: each fetch in a new process (default); in-process: in one long-lived worker per "
        "client; both: each round runs the two",
    )
    parser.add_argument(
        "--in-process", dest="mode", action="store_const", const="in-process", help="--mode in-process"
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument("--output", type=Path, help="also write the results as JSON")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    print(f"load average at start: {load_before:.2f}, {os.cpu_count()} CPUs", flush=True)
    if load_before > 0.5 * (os.cpu_count() or 1):
        print(f"warning: machine is busy (load average {load_before:.2f}): results will be noisy")
    moto_server = args.core_python.parent / "moto_server"
    if not rt.python_ok(args.core_python, "import core, s3fs, boto3") or not moto_server.exists():
        print(
            f"error: {args.core_python} needs core[s3], boto3 and moto[server] (moto_server)", file=sys.stderr
        )
        return 2
    pythons = {"core": args.core_python, "kserve": ensure_kserve_venv(KSERVE_VENV)}
    environment = {
        "core": versions(pythons["core"], ["s3fs", "aiobotocore", "botocore", "moto", "fsspec"]),
        "kserve": versions(pythons["kserve"], ["kserve-storage", "boto3", "botocore", "s3transfer"]),
    }
    for name, found in environment.items():
        print(f"{name} ({pythons[name]}): " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    commit = rt.git_state(rt.REPO)
    print(f"commit {commit or '?'}; python {platform.python_version()}", flush=True)

    modes = MODES if args.mode == "both" else (args.mode,)
    rows: dict[str, list[Fetch]] = {mode: [] for mode in modes}
    workers: dict[str, Worker] = {}
    started_workers: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="storage-fetch-") as tmp:
        workdir = Path(tmp)
        moto = Moto(moto_server, workdir / "moto.log")
        try:
            print(f"moto_server pid {moto.pid} at {moto.endpoint}", flush=True)
            digests = upload(moto, args.size_mb * 1_000_000, args.upload == "single", workdir)
            env = s3_env(moto)
            if "in-process" in modes:
                started_workers = start_workers(args, pythons, env, moto, workdir, workers)
            for number in range(1, args.rounds + 1):
                if "process" in modes:
                    if len(modes) > 1:
                        print(f"round {number}, per-process:", flush=True)
                    rows["process"] += one_round(number, args, pythons, env, moto, digests, workdir)
                if "in-process" in modes:
                    print(f"round {number}, in-process:", flush=True)
                    rows["in-process"] += in_process_round(number, workers, moto, digests, workdir)
        finally:
            for worker in workers.values():
                worker.stop()
            moto.stop()

    load_after = os.getloadavg()[0]
    summaries = {}
    for mode in modes:
        text, summaries[mode] = report(rows[mode], args.rounds, args.markdown, mode)
        title = "each fetch in a new process" if mode == "process" else "in one long-lived worker per client"
        print(f"\n{mode} mode ({title})\n\n{text}" if len(modes) > 1 else f"\n{text}")
    elapsed = time.monotonic() - started
    print(f"\nload average: {load_before:.2f} at start, {load_after:.2f} at end; total time {elapsed:.0f} s")
    if args.output:
        document = {
            "method": {
                "rounds": args.rounds,
                "size_bytes": args.size_mb * 1_000_000,
                "upload": args.upload,
                "chunk_mb": args.chunk_mb,
                "workers": args.workers,
                "mode": args.mode,
                "commit": commit,
            },
            "environment": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_before": load_before,
                "load_average_after": load_after,
                "versions": environment,
            },
            "seconds": elapsed,
        }
        if "process" in modes:
            document["fetches"] = [asdict(row) for row in rows["process"]]
            document["medians"] = {name: median(rows["process"], name) for name in MEASUREMENTS}
            document["ratios"] = summaries["process"]
        if "in-process" in modes:
            document["in_process"] = {
                "workers": started_workers,
                "fetches": [asdict(row) for row in rows["in-process"]],
                "medians": {name: median(rows["in-process"], name) for name in MEASUREMENTS},
                "ratios": summaries["in-process"],
            }
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 0 if all(row.valid for mode in modes for row in rows[mode]) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
