"""Real local storage servers for the storage tests, as fixtures.

Session-scoped, each started once on a free loopback port when a test first
asks for it, stopped (its whole process group) at the end:

    s3_server       moto_server (moto[server]); accepts any credentials
    s3_auth_server  a second moto_server that checks credentials (an IAM user's key)
    gcs_server      gcp-storage-emulator, in memory; checks no credentials
    azure_server    azurite-blob (npm, in .venvs/npm), in memory; checks the shared key

Each yields a dataclass with the endpoint, the environment variables the
storage code reads (KServe's names: `env`, for `monkeypatch` through
`setenv()` or for a server subprocess's `env=`), and a ready fsspec
filesystem (`fs`) to upload with. Function-scoped, `s3_bucket`,
`s3_auth_bucket`, `gcs_bucket` and `azure_container` empty the server (moto's
and the GCS emulator's reset APIs; azurite: every container deleted) and
create a bucket with a fresh name: a `Bucket`, whose `upload()` returns the
model URI (s3://, gs://, az://).

`http_server` (function-scoped) is a threaded http.server on a free port
serving a temporary folder, with Range (206), ETag and Content-Length, and
per-path `Route`s: a Content-Type, a header to require, a status or body of
its own, a connection closed part-way through the body.

`python3 dev.py test` installs all of these (dev.py: TEST_TOOLS, and azurite
with npm); a server that is missing or does not start fails its tests with
how to install it, never skips them.

The helpers test_s3, test_gcs, test_azure and test_http share to serve the
iris example from storage, as plain functions: `train` (an iris model, its
labels shifted) and `train_example` (examples/iris/train.py's) give a
`Trained`, `iris` (a fixture, module-scoped) two that predict otherwise;
`iris_settings`, `predictions`/`check_predictions`, `storage_metrics`/`scrape`,
`cached_files`, `index`/`settled`, `open_store`, `tar_gz`.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import importlib
import io
import json
import mimetypes
import os
import re
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import joblib
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import core
from core.storage import FsspecStore, storage_for
from core.testing import ServerProcess, free_port, json_request

# gcsfs reads this once, when it is first imported: left at its default
# (true), gcsfs.GCSFileSystem is the "extended" class, whose every call first
# asks the Storage Control API over gRPC about the bucket, and waits 30 to 60 s
# for an emulator that has no such API. Set here, before anything imports
# gcsfs, so that the storage code under test gets the plain class too.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
# No cloud metadata server is ever asked for credentials (169.254.169.254 is
# off limits to tests): google-auth and gcsfs read NO_GCE_CHECK, botocore
# AWS_EC2_METADATA_DISABLED. google-auth reads it on import, hence here too.
NO_METADATA_SERVER = {"NO_GCE_CHECK": "true", "AWS_EC2_METADATA_DISABLED": "true"}
for _name, _value in NO_METADATA_SERVER.items():
    os.environ.setdefault(_name, _value)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NPM_PREFIX = ROOT / ".venvs" / "npm"
AZURITE = NPM_PREFIX / "node_modules" / ".bin" / "azurite-blob"
INSTALL = "`python3 dev.py test` installs the test tools"
START_TIMEOUT = 60.0

# Azurite's one built-in account, with its published key (the emulator's, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# Loopback only, whatever proxy the environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(url: str, method: str = "GET", timeout: float = 10.0) -> bytes:
    with _OPENER.open(urllib.request.Request(url, method=method), timeout=timeout) as response:
        return bytes(response.read())


def _import(module: str, install: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as error:
        pytest.fail(f"{module} is not installed ({error}): {install}", pytrace=False)


def _die_with_parent() -> None:
    """In the child (Linux): SIGTERM when pytest dies, even by SIGKILL, so
    that no server outlives a killed test run."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Emulator:
    """A server subprocess in a process group of its own (node and Python
    servers alike), its output in a temporary file."""

    def __init__(
        self, name: str, command: list[str], ready_url: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.command = command
        self.ready_url = ready_url
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  (as long as the server)

    def start(self, install_hint: str) -> Emulator:
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=tempfile.gettempdir(),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as error:
            pytest.fail(f"{self.name} could not be started ({error}): {install_hint}", pytrace=False)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.process.returncode} at start "
                    f"({' '.join(self.command)}):\n{self.log()}\n{install_hint}",
                    pytrace=False,
                )
            try:
                _call(self.ready_url, timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # it answers: an error status is an answer
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.name} did not answer {self.ready_url} within {START_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-5000:]

    def stop(self) -> None:
        """SIGTERM to the server's process group (its own PID: a new
        session), SIGKILL after 10 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


@dataclass(frozen=True)
class StorageServer:
    name: str  # "s3", "gcs", "azure"
    scheme: str  # the URI scheme fsspec knows it by: "s3", "gs", "az"
    endpoint_url: str  # http://127.0.0.1:PORT
    env: dict[str, str]  # what the storage code needs set to reach this server
    fs: Any  # an fsspec filesystem on this server (s3fs, gcsfs, adlfs)
    pid: int
    _reset: Callable[[], None] = field(repr=False)

    def reset(self) -> None:
        """Empty the server: no bucket or container left."""
        self._reset()
        self.fs.invalidate_cache()

    def setenv(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)


@dataclass(frozen=True)
class S3Server(StorageServer):
    access_key_id: str
    secret_access_key: str
    region: str
    enforces_credentials: bool


@dataclass(frozen=True)
class GCSServer(StorageServer):
    project: str


@dataclass(frozen=True)
class AzureServer(StorageServer):
    account_name: str
    account_key: str
    blob_endpoint: str  # http://127.0.0.1:PORT/devstoreaccount1
    connection_string: str

    def blob_url(self, container: str, path: str = "") -> str:
        """The blob's plain URL (what https://ACCOUNT.blob.core.windows.net/... is in Azure)."""
        return f"{self.blob_endpoint}/{container}/{path}".rstrip("/")


@dataclass(frozen=True)
class Bucket:
    """A bucket (an Azure container) that exists, empty, for one test."""

    server: StorageServer
    name: str

    @property
    def fs(self) -> Any:
        return self.server.fs

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def path(self, path: str = "") -> str:
        """The fsspec path (no scheme): NAME/path."""
        return f"{self.name}/{path.lstrip('/')}".rstrip("/")

    def uri(self, path: str = "") -> str:
        """The URI a model setting names: s3://NAME/path, gs://..., az://..."""
        return f"{self.server.scheme}://{self.path(path)}"

    def upload(self, files: Mapping[str, bytes | str | Path], prefix: str = "") -> str:
        """Write each `{relative path: content}` (bytes, text, or a local
        file) under `prefix`; the URI of `prefix`."""
        for name, content in files.items():
            target = self.path(f"{prefix.strip('/')}/{name}" if prefix else name)
            if isinstance(content, Path):
                self.fs.put_file(str(content), target)
            else:
                self.fs.pipe_file(target, content.encode() if isinstance(content, str) else content)
        self.fs.invalidate_cache()
        return self.uri(prefix)

    def upload_folder(self, folder: Path, prefix: str = "") -> str:
        """Every file under `folder`, by its path relative to it, under `prefix`."""
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.upload(files, prefix)


def _bucket_name(request: pytest.FixtureRequest) -> str:
    """3 to 63 characters of [a-z0-9-], starting and ending with a letter or
    digit, no "--": valid for S3, GCS and Azure; the test's name, then 8 random hex digits."""
    words = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"{words or 'test'}-{secrets.token_hex(4)}"


def _new_bucket(server: StorageServer, request: pytest.FixtureRequest, reset: bool = True) -> Bucket:
    if reset:
        server.reset()
    name = _bucket_name(request)
    server.fs.mkdir(name)
    server.fs.invalidate_cache()
    return Bucket(server, name)


def _script(name: str, package: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(
                f"{name} not found next to {sys.executable}: {INSTALL}, "
                f"or `{BIN / 'pip'} install '{package}'`",
                pytrace=False,
            )
        return found
    return str(path)


# --- S3: moto ---------------------------------------------------------------

S3_INSTALL = f"{INSTALL} (moto[server], s3fs)"


def _s3(
    endpoint: str, key: str, secret: str, pid: int, enforces: bool, reset: Callable[[], None]
) -> S3Server:
    s3fs = _import("s3fs", S3_INSTALL)
    region = "us-east-1"
    # No region_name in client_kwargs: s3fs's mkdir would send it as the
    # bucket's LocationConstraint, which S3 (and moto) refuse for us-east-1.
    fs = s3fs.S3FileSystem(
        key=key, secret=secret, endpoint_url=endpoint, skip_instance_cache=True, use_listings_cache=False
    )
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return S3Server("s3", "s3", endpoint, env, fs, pid, reset, key, secret, region, enforces)


def _moto(env: Mapping[str, str] | None = None) -> tuple[Emulator, str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [_script("moto_server", "moto[server]"), "-H", "127.0.0.1", "-p", str(port)]
    emulator = Emulator("moto_server", command, f"{endpoint}/moto-api/", env).start(S3_INSTALL)
    return emulator, endpoint


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto_server: S3 (and every other AWS API) at `endpoint_url`. It
    accepts any access key: testing/testing here."""
    emulator, endpoint = _moto()
    assert emulator.process is not None

    def reset() -> None:
        _call(f"{endpoint}/moto-api/reset", method="POST")

    try:
        yield _s3(endpoint, "testing", "testing", emulator.process.pid, enforces=False, reset=reset)
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def s3_auth_server() -> Iterator[S3Server]:
    """A moto_server that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT):
    `access_key_id`/`secret_access_key` are an IAM user's, allowed s3:*; any
    other key, a wrong secret or no signature at all get 403. It cannot be
    reset (a reset would drop the user, and checking stays on): each test
    takes a fresh bucket (`s3_auth_bucket`)."""
    boto3 = _import("boto3", S3_INSTALL)
    # The three IAM calls below are the unauthenticated ones.
    emulator, endpoint = _moto({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    assert emulator.process is not None
    try:
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )  # fmt: skip
        iam.create_user(UserName="storage-tests")
        allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = json.dumps({"Version": "2012-10-17", "Statement": [allow]})
        iam.put_user_policy(UserName="storage-tests", PolicyName="s3", PolicyDocument=policy)
        key = iam.create_access_key(UserName="storage-tests")["AccessKey"]
        yield _s3(
            endpoint,
            key["AccessKeyId"],
            key["SecretAccessKey"],
            emulator.process.pid,
            enforces=True,
            reset=_cannot_reset,
        )
    finally:
        emulator.stop()


def _cannot_reset() -> None:
    raise RuntimeError("s3_auth_server cannot be reset: take a fresh bucket (s3_auth_bucket)")


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> Bucket:
    """moto reset (no bucket left), then a new empty bucket."""
    return _new_bucket(s3_server, request)


@pytest.fixture
def s3_auth_bucket(s3_auth_server: S3Server, request: pytest.FixtureRequest) -> Bucket:
    """A new empty bucket on the credential-checking moto (not reset)."""
    return _new_bucket(s3_auth_server, request, reset=False)


# --- GCS: gcp-storage-emulator -------------------------------------------------

GCS_INSTALL = f"{INSTALL} (gcp-storage-emulator, gcsfs)"


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """gcp-storage-emulator, in memory, at `endpoint_url` (the JSON API at
    /storage/v1, uploads at /upload/storage/v1). It checks no credentials."""
    gcsfs = _import("gcsfs", GCS_INSTALL)
    if gcsfs.GCSFileSystem is not gcsfs.core.GCSFileSystem:
        pytest.fail(
            "gcsfs was imported before tests/storage/conftest.py set "
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: "
            "gcsfs.GCSFileSystem is the extended class, which waits on gRPC calls the emulator does not "
            "answer. Set GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false in the environment of pytest.",
            pytrace=False,
        )
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [_script("gcp-storage-emulator", "gcp-storage-emulator")]
    command += ["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    emulator = Emulator("gcp-storage-emulator", command, f"{endpoint}/").start(GCS_INSTALL)
    assert emulator.process is not None
    try:
        project = "storage-tests"
        fs = gcsfs.core.GCSFileSystem(
            token="anon", project=project, endpoint_url=endpoint, skip_instance_cache=True,
            use_listings_cache=False,
        )  # fmt: skip
        env = {
            "STORAGE_EMULATOR_HOST": endpoint,
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "NO_GCE_CHECK": "true",
        }

        def reset() -> None:
            _call(f"{endpoint}/wipe")

        yield GCSServer("gcs", "gs", endpoint, env, fs, emulator.process.pid, reset, project)
    finally:
        emulator.stop()


@pytest.fixture
def gcs_bucket(gcs_server: GCSServer, request: pytest.FixtureRequest) -> Bucket:
    """The emulator wiped (no bucket left), then a new empty bucket."""
    return _new_bucket(gcs_server, request)


# --- Azure Blob: azurite ------------------------------------------------------

AZURE_INSTALL = (
    f"{INSTALL}: azurite with npm into .venvs/npm (Node.js >= 20 and npm needed); by hand: "
    "`npm install --prefix .venvs/npm azurite@VERSION` in the repository's root "
    "(VERSION: dev.py's NPM_PACKAGES)"
)


@pytest.fixture(scope="session")
def azure_server() -> Iterator[AzureServer]:
    """azurite-blob, in memory, telemetry off, at `endpoint_url`; the
    account's blobs at `blob_endpoint`. It checks the shared-key signature: a
    wrong key, or none, gets 403 AuthorizationFailure."""
    adlfs = _import("adlfs", f"{INSTALL} (adlfs)")
    blob = _import("azure.storage.blob", f"{INSTALL} (adlfs brings azure-storage-blob)")
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: azurite needs Node.js >= 20. {AZURE_INSTALL}", pytrace=False)
    if not AZURITE.exists():
        pytest.fail(f"{AZURITE} does not exist. {AZURE_INSTALL}", pytrace=False)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [node, str(AZURITE.resolve()), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    command += ["--inMemoryPersistence", "--extentMemoryLimit", "1024", "--skipApiVersionCheck", "--loose"]
    command += ["--disableTelemetry", "--silent"]
    ready = f"{endpoint}/{AZURITE_ACCOUNT}?comp=list"
    emulator = Emulator("azurite-blob", command, ready).start(AZURE_INSTALL)
    assert emulator.process is not None
    try:
        blob_endpoint = f"{endpoint}/{AZURITE_ACCOUNT}"
        connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={blob_endpoint};"
        )
        # Its listings cache stays on: adlfs's ls("") of the containers
        # reads its answer back from that cache (KeyError without it).
        fs = adlfs.AzureBlobFileSystem(connection_string=connection_string, skip_instance_cache=True)
        service = blob.BlobServiceClient.from_connection_string(connection_string)

        def reset() -> None:
            for container in service.list_containers():
                service.delete_container(container.name)

        env = {"AZURE_STORAGE_CONNECTION_STRING": connection_string}
        yield AzureServer(
            "azure", "az", endpoint, env, fs, emulator.process.pid, reset,
            AZURITE_ACCOUNT, AZURITE_KEY, blob_endpoint, connection_string,
        )  # fmt: skip
        service.close()
    finally:
        emulator.stop()


@pytest.fixture
def azure_container(azure_server: AzureServer, request: pytest.FixtureRequest) -> Bucket:
    """Every container deleted, then a new empty one."""
    return _new_bucket(azure_server, request)


# --- HTTP(S) ----------------------------------------------------------------


@dataclass
class Route:
    """How the HTTP server answers one path, instead of just serving the file."""

    content_type: str | None = None  # sent instead of the file's guessed type
    status: int | None = None  # answer this status (with `body`, else empty), whatever the file
    body: bytes | None = None  # served instead of a file (Range, ETag and cuts apply)
    headers: dict[str, str] = field(default_factory=dict)  # added to the answer
    require_headers: dict[str, str] = field(default_factory=dict)  # else 403
    cut_after: int | None = None  # close the connection after this many body bytes...
    cut_times: int | None = None  # ...in this many answers (None: every one)
    ranges: bool = True  # honour Range (206) and send Accept-Ranges: bytes


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with its query
    headers: dict[str, str]  # names in lower case


class LocalHTTPServer:
    """http.server, threaded, on 127.0.0.1, serving `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="http-server", daemon=True
        )

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)

    def url_of(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"

    def put(self, path: str, content: bytes | str) -> str:
        """Write the file at `path` under `root`; its URL."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        return self.url_of(path)

    def route(self, path: str, **settings: Any) -> Route:
        """Answer `path` as `Route(**settings)` says (replacing its route)."""
        route = self.routes["/" + path.lstrip("/")] = Route(**settings)
        return route

    def requests_for(self, path: str) -> list[RecordedRequest]:
        path = "/" + path.lstrip("/")
        return [r for r in self.requests if urllib.parse.urlsplit(r.path).path == path]


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """`Range: bytes=...` as [start, end), or None if unsatisfiable.
    ValueError if it is not one plain byte range: the whole body is then
    sent (200), as RFC 9110 allows."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(header)
    first, last = match.groups()
    if first == "":  # the last N bytes
        length = int(last)
        return (max(size - length, 0), size) if length > 0 and size > 0 else None
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or (last != "" and int(last) < start):
        return None
    return start, end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection's thread ends after this

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _simple(self, status: int, text: str, head: bool) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, head: bool) -> None:
        owner: LocalHTTPServer = self.server.owner  # type: ignore[attr-defined]
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner.requests.append(RecordedRequest(self.command, self.path, headers))
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        route = owner.routes.get(path, Route())
        for name, value in route.require_headers.items():
            if headers.get(name.lower()) != value:
                return self._simple(403, f"header {name} missing or wrong\n", head)

        file: Path | None = None
        if route.body is not None:
            size, mtime = len(route.body), time.time()
            etag = f'"{hashlib.md5(route.body).hexdigest()}"'
        else:
            file = (owner.root / path.lstrip("/")).resolve()
            if not file.is_relative_to(owner.root.resolve()) or not file.is_file():
                return self._simple(route.status or 404, "", head)
            stat = file.stat()
            size, mtime = stat.st_size, stat.st_mtime
            etag = f'"{stat.st_mtime_ns:x}-{size:x}"'

        status, start, end = route.status or 200, 0, size
        wanted = headers.get("range")
        if route.ranges and wanted is not None and status == 200 and headers.get("if-range", etag) == etag:
            with contextlib.suppress(ValueError):
                span = _byte_range(wanted, size)
                if span is None:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status, (start, end) = 206, span
        self.send_response(status)
        content_type = route.content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
        if route.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if head:
            return None

        limit = end - start
        with owner.lock:
            if route.cut_after is not None and (route.cut_times is None or route.cut_times > 0):
                limit = min(limit, route.cut_after)
                cut = True
                if route.cut_times is not None:
                    route.cut_times -= 1
            else:
                cut = False
        if file is None:
            assert route.body is not None
            self.wfile.write(route.body[start : start + limit])
        else:
            with file.open("rb") as source:
                source.seek(start)
                while limit > 0:
                    chunk = source.read(min(limit, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    limit -= len(chunk)
        if cut:
            # Fewer bytes than Content-Length, then the end of the connection:
            # the client sees an interrupted download.
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        return None


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LocalHTTPServer]:
    """A threaded HTTP server on a free port serving `tmp_path / "www"`
    (`put()` writes a file and returns its URL, `route()` changes how a path
    is answered, `requests` records every request)."""
    root = tmp_path / "www"
    root.mkdir()
    server = LocalHTTPServer(root).start()
    try:
        yield server
    finally:
        server.stop()


# --- Serving the iris example from storage (test_s3, test_gcs, test_azure, test_http) ---

MiB = 1024 * 1024
EXAMPLE = ROOT / "examples" / "iris"
# Rows of every class (iris is sorted by class, 50 rows each).
FEATURES = load_iris().data[::10].astype(np.float32)
# `core start`'s options for the models to load in the server process, no worker.
IN_PROCESS = ("--parallel-workers", "0")


@dataclass(frozen=True)
class Trained:
    artifact: bytes  # model.joblib's bytes
    estimator: Any


def train(folder: Path, shift: int) -> Trained:
    """A LogisticRegression on scikit-learn's bundled iris, its labels
    shifted by `shift` (mod 3): another shift predicts another class."""
    features, labels = load_iris(return_X_y=True)
    path = folder / f"model-{shift}.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, (labels + shift) % 3), path)
    return Trained(path.read_bytes(), joblib.load(path))


def train_example(path: Path) -> Trained:
    """The example's model (examples/iris/train.py's LogisticRegression), saved at `path`."""
    saved = runpy.run_path(str(EXAMPLE / "train.py"))["train"](path)
    return Trained(saved.read_bytes(), joblib.load(saved))


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trained, Trained]:
    """The iris model, and a changed one that predicts otherwise for every flower."""
    folder = tmp_path_factory.mktemp("iris")
    first, changed = train(folder, 0), train(folder, 1)
    assert (first.estimator.predict(FEATURES) != changed.estimator.predict(FEATURES)).all()
    return first, changed


def iris_settings(uri: str, name: str = "iris") -> bytes:
    """examples/iris/model-settings.json, named `name`, its artifact at `uri`."""
    values = json.loads((EXAMPLE / "model-settings.json").read_text())
    values["name"] = name
    values["parameters"]["uri"] = uri
    return json.dumps(values).encode()


def tar_gz(members: Mapping[str, bytes]) -> bytes:
    """A .tar.gz of `{name: content}`, in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def open_store(uri: str, settings: core.Settings) -> FsspecStore:
    """The store core opens for `uri`: the installed storage's opener."""
    module, _, function = storage_for(uri).open.partition(":")
    store: FsspecStore = getattr(importlib.import_module(module), function)(uri, settings)
    return store


def predictions(server: ServerProcess, model: str) -> list[int]:
    """What `model` predicts for FEATURES."""
    body = json_request(FEATURES, ["predict"])
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    return list(output["data"])


def check_predictions(server: ServerProcess, model: str, estimator: Any) -> None:
    """`model` predicts for FEATURES what `estimator` does."""
    assert predictions(server, model) == estimator.predict(FEATURES).tolist()


def storage_metrics(server: ServerProcess, scheme: str) -> dict[str, float]:
    """The metrics endpoint's samples labelled scheme=`scheme`, by name."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("scheme") == scheme and not sample.name.endswith("_created")
    }


def scrape(server: ServerProcess, scheme: str) -> Callable[[str], float]:
    """The metrics endpoint, parsed: the value of a sample with
    scheme=`scheme` (0 when absent)."""
    samples = storage_metrics(server, scheme)
    return lambda name: samples.get(name, 0.0)


def cached_files(cache: Path) -> dict[str, bytes]:
    """Every file of every cache entry's content, by its path in the content folder."""
    return {
        path.relative_to(content).as_posix(): path.read_bytes()
        for content in sorted(cache.glob("*/content"))
        for path in sorted(content.rglob("*"))
        if path.is_file()
    }


def index(server: ServerProcess) -> dict[str, dict[str, Any]]:
    response = httpx.post(f"{server.url}/v2/repository/index", json={}, timeout=10)
    assert response.status_code == 200, response.text
    return {item["name"]: item for item in response.json()}


def settled(server: ServerProcess, names: set[str]) -> dict[str, dict[str, Any]]:
    """The index once every model in `names` is READY or FAILED."""
    deadline = time.monotonic() + 60
    while True:
        found = index(server)
        if names <= found.keys() and all(found[n]["state"] in ("READY", "FAILED") for n in names):
            return found
        assert time.monotonic() < deadline, f"models still loading: {found}\n{server.log()}"
        time.sleep(0.05)
