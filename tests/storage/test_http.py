"""http(s) model URIs against a real local HTTP server (conftest's
`http_server`: Range, ETag, per-path Content-Type, a required header, a
connection closed part-way): in process with core.storage.fetch, then end to
end with `core start URL` and with model-settings.json files whose
`parameters.uri` is a URL, a warm cache across restarts, and the storage
metrics."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import core
from core.errors import ModelLoadError
from core.storage import fetch
from core.testing import ServerProcess

from .conftest import (
    EXAMPLE,
    IN_PROCESS,
    LocalHTTPServer,
    MiB,
    check_predictions,
    iris_settings,
    scrape,
    settled,
    tar_gz,
    train_example,
)

SECRET = "s3cr3t-t0ken"


def settings(tmp_path: Path, **values: Any) -> core.Settings:
    return core.Settings(storage_cache_dir=str(tmp_path / "cache"), **values)


def cache_entries(tmp_path: Path) -> list[str]:
    cache = tmp_path / "cache"
    if not cache.exists():
        return []
    return sorted(path.name for path in cache.iterdir() if not path.name.endswith(".lock"))


def methods(server: LocalHTTPServer, path: str | None = None) -> list[str]:
    requests = server.requests if path is None else server.requests_for(path)
    return [request.method for request in requests]


def data(size: int) -> bytes:
    return np.random.default_rng(size).bytes(size)


# In process.


def test_an_artifact_served_as_text_html_is_fetched(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    # KServe's storage initializer refuses anything but application/octet-stream here.
    artifact = data(5000)
    url = http_server.put("models/model.joblib", artifact)
    http_server.route("models/model.joblib", content_type="text/html; charset=utf-8")
    fetched = fetch(url, settings(tmp_path))
    assert fetched.path.is_file()
    assert fetched.path.name == "model.joblib"
    assert fetched.path.read_bytes() == artifact
    assert fetched.scheme == "http" and fetched.downloaded == len(artifact)
    assert {request.method for request in http_server.requests_for("models/model.joblib")} >= {"HEAD", "GET"}


def test_a_large_file_is_fetched_in_byte_ranges(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    large = data(3 * MiB + 17)
    url = http_server.put("big.bin", large)
    fetched = fetch(url, settings(tmp_path, storage_chunk_size=MiB))
    assert fetched.path.read_bytes() == large
    gets = [request for request in http_server.requests_for("big.bin") if request.method == "GET"]
    # The server honours Range (Accept-Ranges: bytes): each GET with a Range is a 206.
    ranges = sorted(request.headers["range"] for request in gets if "range" in request.headers)
    expected = [f"bytes={start}-{min(start + MiB, len(large)) - 1}" for start in range(0, len(large), MiB)]
    assert ranges == sorted(expected)
    assert len(gets) == len(expected)  # no whole-file GET besides


def test_a_server_without_range_support_still_works(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    large = data(3 * MiB + 17)
    url = http_server.put("big.bin", large)
    http_server.route("big.bin", ranges=False)
    fetched = fetch(url, settings(tmp_path, storage_chunk_size=MiB))
    assert fetched.path.read_bytes() == large
    gets = [request for request in http_server.requests_for("big.bin") if request.method == "GET"]
    assert len(gets) == 1


@pytest.mark.parametrize("size", [200_000, 3 * MiB], ids=["whole", "ranges"])
def test_an_interrupted_body_is_an_error_and_leaves_no_cache_entry(
    http_server: LocalHTTPServer, tmp_path: Path, size: int
) -> None:
    content = data(size)
    url = http_server.put("model.joblib", content)
    # Cut inside the first answer (a whole body, or a 1 MiB range).
    http_server.route("model.joblib", cut_after=min(size // 3, MiB // 2), cut_times=1)
    with pytest.raises(ModelLoadError) as raised:
        fetch(url, settings(tmp_path, storage_chunk_size=MiB))
    assert url in raised.value.message
    assert cache_entries(tmp_path) == []
    # The server is fine again: the next fetch downloads it whole, from scratch.
    fetched = fetch(url, settings(tmp_path, storage_chunk_size=MiB))
    assert not fetched.cache_hit
    assert fetched.path.read_bytes() == content


def test_a_404_is_an_error_naming_the_url(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    url = http_server.url_of("models/not-there.joblib")
    with pytest.raises(ModelLoadError) as raised:
        fetch(url, settings(tmp_path))
    assert url in raised.value.message
    assert "404" in raised.value.message
    assert cache_entries(tmp_path) == []


def test_credentials_in_the_url_never_appear_in_errors(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    url = f"http://user:{SECRET}@127.0.0.1:{http_server.port}/missing.joblib?sig={SECRET}"
    with pytest.raises(ModelLoadError) as raised:
        fetch(url, settings(tmp_path))
    assert http_server.url_of("missing.joblib") in raised.value.message
    assert SECRET not in raised.value.message and "sig=" not in raised.value.message


def test_headers_are_sent_to_their_host_only(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    artifact = data(4000)
    url = http_server.put("private/model.joblib", artifact)
    http_server.route("private/model.joblib", require_headers={"Authorization": "Bearer t0ken"})

    with pytest.raises(ModelLoadError) as raised:
        fetch(url, settings(tmp_path))
    assert url in raised.value.message and "403" in raised.value.message
    other_host = {"models.example.com": {"Authorization": "Bearer t0ken"}}
    with pytest.raises(ModelLoadError):
        fetch(url, settings(tmp_path, storage_http_headers=other_host))
    assert all("authorization" not in request.headers for request in http_server.requests)

    this_host = {"127.0.0.1": {"Authorization": "Bearer t0ken"}}
    fetched = fetch(url, settings(tmp_path, storage_http_headers=this_host))
    assert fetched.path.read_bytes() == artifact
    authorised = [request for request in http_server.requests if "authorization" in request.headers]
    assert {request.method for request in authorised} == {"HEAD", "GET"}
    assert {request.headers["authorization"] for request in authorised} == {"Bearer t0ken"}
    assert "t0ken" not in raised.value.message


def test_an_unchanged_url_is_not_downloaded_again(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    url = http_server.put("model.joblib", data(4000))
    first = fetch(url, settings(tmp_path))
    http_server.requests.clear()
    second = fetch(url, settings(tmp_path))
    assert second.cache_hit and second.downloaded == 0 and second.path == first.path
    assert methods(http_server) == ["HEAD"]
    # Changed on the server (another ETag): downloaded again.
    http_server.put("model.joblib", data(4001))
    third = fetch(url, settings(tmp_path))
    assert not third.cache_hit
    assert third.path.read_bytes() == data(4001)


def test_an_archive_sent_with_content_encoding_gzip_is_unpacked(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    # An object stored gzipped with `Content-Encoding: gzip` as metadata (S3,
    # GCS, a static server's .gz): Content-Length counts the bytes as sent
    # (compressed), and the body is the .tar.gz the server holds.
    archive = tar_gz({"iris/model-settings.json": b"{}", "iris/a": b"x", "README": b"y"})
    url = http_server.put("repo.tar.gz", archive)
    http_server.route("repo.tar.gz", headers={"Content-Encoding": "gzip"}, ranges=False)
    fetched = fetch(url, settings(tmp_path))
    assert (fetched.path / "iris" / "model-settings.json").read_bytes() == b"{}"


class _GetOnly(BaseHTTPRequestHandler):
    """An S3 presigned GET URL's answers: the signature covers the method,
    so HEAD gets 403 SignatureDoesNotMatch; GET (with Range) works."""

    protocol_version = "HTTP/1.1"
    content = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        content, status = self.content, 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if wanted is not None:
            start, last = int(wanted.group(1)), min(int(wanted.group(2)), len(content) - 1)
            content, status = content[start : last + 1], 206
        self.send_response(status)
        self.send_header("Content-Type", "binary/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("ETag", '"v1"')
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{last}/{len(self.content)}")
        self.end_headers()
        self.wfile.write(content)


@pytest.fixture
def get_only_server() -> Iterator[tuple[str, bytes]]:
    handler = type("Handler", (_GetOnly,), {"content": data(70_000)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bucket/model.joblib", handler.content
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_url_that_answers_get_but_not_head_is_fetched(
    get_only_server: tuple[str, bytes], tmp_path: Path
) -> None:
    # As a presigned S3 GET URL: ?X-Amz-Signature=... signed for GET only.
    url, content = get_only_server
    presigned = f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SECRET}"
    fetched = fetch(presigned, settings(tmp_path))
    assert fetched.path.read_bytes() == content


# End to end: `core start URL`, a warm cache, model-settings.json URIs, metrics.


@pytest.fixture(scope="module")
def example_iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Any]:
    """The example's model.joblib (examples/iris/train.py) and its estimator."""
    trained = train_example(tmp_path_factory.mktemp("iris") / "model.joblib")
    return trained.artifact, trained.estimator


def test_core_start_on_an_artifact_url_then_warm(
    http_server: LocalHTTPServer, tmp_path: Path, example_iris: tuple[bytes, Any]
) -> None:
    artifact, estimator = example_iris
    url = http_server.put("model.joblib", artifact)
    http_server.route("model.joblib", content_type="text/html")
    env = {"CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache")}
    with ServerProcess(url, *IN_PROCESS, env=env) as server:
        check_predictions(server, "model", estimator)
        assert "GET" in methods(http_server, "model.joblib")
        cold = scrape(server, "http")

    http_server.requests.clear()
    with ServerProcess(url, *IN_PROCESS, env=env) as server:
        check_predictions(server, "model", estimator)
        assert methods(http_server) == ["HEAD"]  # the cache's: no GET
        warm = scrape(server, "http")
    # The fetch `core start URL` made before serving is on the metrics endpoint too.
    assert cold("storage_download_bytes_total") == len(artifact)
    assert warm("storage_cache_hits_total") >= 1
    assert warm("storage_download_bytes_total") == 0


def test_core_start_on_an_archive_of_a_bare_model_folder_names_the_model_after_the_uri(
    http_server: LocalHTTPServer, tmp_path: Path, example_iris: tuple[bytes, Any]
) -> None:
    """`tar czf flowers.tar.gz flowers/` with only the artifact in it: the
    archive's one folder is the content, and the model is `flowers`."""
    model, estimator = example_iris
    url = http_server.put("/flowers.tar.gz", tar_gz({"flowers/model.joblib": model}))
    env = {"CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache")}
    with ServerProcess(url, env=env) as server:
        check_predictions(server, "flowers", estimator)


def test_core_start_on_a_repository_archive_url_then_warm(
    http_server: LocalHTTPServer, tmp_path: Path, example_iris: tuple[bytes, Any]
) -> None:
    artifact, estimator = example_iris
    files = {
        "iris/model-settings.json": (EXAMPLE / "model-settings.json").read_bytes(),
        "iris/model.joblib": artifact,
    }
    url = http_server.put("repo.tar.gz", tar_gz(files))
    env = {"CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache")}
    with ServerProcess(url, env=env) as server:  # with a worker process, as by default
        check_predictions(server, "iris", estimator)
    assert methods(http_server) == ["HEAD", "GET"]

    http_server.requests.clear()
    with ServerProcess(url, env=env) as server:
        check_predictions(server, "iris", estimator)
    assert methods(http_server) == ["HEAD"]


def test_a_model_whose_url_is_404_fails_alone_naming_it(
    http_server: LocalHTTPServer, tmp_path: Path, example_iris: tuple[bytes, Any]
) -> None:
    artifact, estimator = example_iris
    good = http_server.put("store/iris/model.joblib", artifact)
    missing = http_server.url_of("store/gone/model.joblib")
    repository = tmp_path / "repository"
    for name, uri in (("iris", good), ("gone", missing)):
        (repository / name).mkdir(parents=True)
        (repository / name / "model-settings.json").write_bytes(iris_settings(uri, name))
    env = {"CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache")}

    with ServerProcess(repository, *IN_PROCESS, env=env, wait_for="/v2/health/live") as server:
        index = settled(server, {"iris", "gone"})
        assert index["iris"]["state"] == "READY", index
        assert index["gone"]["state"] == "FAILED", index
        assert missing in index["gone"]["reason"], index
        check_predictions(server, "iris", estimator)
        cold = scrape(server, "http")
        assert cold("storage_download_bytes_total") == len(artifact)
        assert cold("storage_download_seconds_count") == 1
        assert cold("storage_cache_hits_total") == 0

    http_server.requests.clear()
    with ServerProcess(repository, *IN_PROCESS, env=env, wait_for="/v2/health/live") as server:
        index = settled(server, {"iris", "gone"})
        assert index["iris"]["state"] == "READY" and index["gone"]["state"] == "FAILED", index
        check_predictions(server, "iris", estimator)
        warm = scrape(server, "http")
        assert warm("storage_cache_hits_total") >= 1
        assert warm("storage_download_bytes_total") == 0
    assert methods(http_server, "store/iris/model.joblib") == ["HEAD"]
