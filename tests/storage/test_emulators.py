"""The storage test servers themselves (conftest.py): each one stores,
lists and serves byte ranges through fsspec; the environment each fixture
hands out is enough for a filesystem built from the environment alone; the
credential checks are the ones expected; the HTTP server's ranges, routes
and interrupted bodies behave."""

from __future__ import annotations

import base64
import hashlib
import http.client
import urllib.error
import urllib.request
from typing import Any

import pytest

MODEL = bytes(range(256)) * 40  # 10,240 bytes
CONFIG = b'{"name": "m"}'

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    return OPENER.open(urllib.request.Request(url, headers=headers or {}, method=method), timeout=10)


@pytest.mark.parametrize("bucket_fixture", ["s3_bucket", "gcs_bucket", "azure_container"])
def test_upload_list_and_read_back(bucket_fixture: str, request: pytest.FixtureRequest) -> None:
    bucket = request.getfixturevalue(bucket_fixture)
    uri = bucket.upload({"model.bin": MODEL, "sub/config.json": CONFIG}, prefix="models/m")
    assert uri == f"{bucket.server.scheme}://{bucket.name}/models/m"
    fs = bucket.fs
    assert sorted(fs.find(bucket.path("models"))) == [
        bucket.path("models/m/model.bin"),
        bucket.path("models/m/sub/config.json"),
    ]
    assert fs.cat_file(bucket.path("models/m/model.bin")) == MODEL
    assert fs.cat_file(bucket.path("models/m/model.bin"), start=1000, end=1010) == MODEL[1000:1010]
    info = fs.info(bucket.path("models/m/model.bin"))
    assert info["type"] == "file" and info["size"] == len(MODEL)
    md5 = hashlib.md5(MODEL)
    if bucket.server.name == "s3":
        assert info["ETag"] == f'"{md5.hexdigest()}"'  # a single-part upload's ETag is its MD5
    elif bucket.server.name == "gcs":
        assert info["md5Hash"] == base64.b64encode(md5.digest()).decode()
        assert info["crc32c"] and int(info["generation"]) > 0
    else:
        assert bytes(info["content_settings"]["content_md5"]) == md5.digest()
        assert info["etag"].startswith('"0x')
    # The fixture's reset: the next test's bucket is on an empty server.
    bucket.server.reset()
    assert fs.ls("") == []


@pytest.mark.parametrize("server_fixture", ["s3_server", "gcs_server", "azure_server"])
def test_env_alone_reaches_the_server(
    server_fixture: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that gets its endpoint and credentials from the
    environment only, as the storage code will, reads what the fixture's own
    filesystem wrote."""
    server = request.getfixturevalue(server_fixture)
    server.reset()
    server.fs.mkdir("from-env")
    server.fs.pipe_file("from-env/a.txt", b"hello")
    server.setenv(monkeypatch)
    if server.name == "s3":
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)  # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID...
    elif server.name == "gcs":
        import gcsfs

        fs = gcsfs.GCSFileSystem(token="anon", skip_instance_cache=True)  # STORAGE_EMULATOR_HOST
    else:
        import adlfs

        fs = adlfs.AzureBlobFileSystem(skip_instance_cache=True)  # AZURE_STORAGE_CONNECTION_STRING
    assert fs.cat_file("from-env/a.txt") == b"hello"


def test_moto_accepts_any_credentials(s3_bucket: Any) -> None:
    import s3fs

    s3_bucket.upload({"a": b"1"})
    other = s3fs.S3FileSystem(
        key="anything", secret="else", endpoint_url=s3_bucket.server.endpoint_url, skip_instance_cache=True
    )
    assert other.cat_file(s3_bucket.path("a")) == b"1"


def test_moto_with_auth_refuses_wrong_credentials(s3_auth_bucket: Any) -> None:
    import s3fs

    server = s3_auth_bucket.server
    assert server.enforces_credentials
    s3_auth_bucket.upload({"a": b"1"})
    assert s3_auth_bucket.fs.cat_file(s3_auth_bucket.path("a")) == b"1"
    for key, secret in [("AKIAWRONGWRONGWRONG1", "wrong"), (server.access_key_id, "wrong secret")]:
        wrong = s3fs.S3FileSystem(
            key=key, secret=secret, endpoint_url=server.endpoint_url, skip_instance_cache=True
        )
        with pytest.raises(PermissionError):
            wrong.cat_file(s3_auth_bucket.path("a"))
    anonymous = s3fs.S3FileSystem(anon=True, endpoint_url=server.endpoint_url, skip_instance_cache=True)
    with pytest.raises(PermissionError):
        anonymous.cat_file(s3_auth_bucket.path("a"))


def test_azurite_refuses_a_wrong_key(azure_container: Any) -> None:
    import adlfs
    from azure.core.exceptions import HttpResponseError

    server = azure_container.server
    azure_container.upload({"a": b"1"})
    wrong_key = base64.b64encode(b"\0" * 64).decode()
    for connection_string in [
        server.connection_string.replace(server.account_key, wrong_key),
        server.connection_string.replace(f"AccountKey={server.account_key};", ""),  # anonymous
    ]:
        fs = adlfs.AzureBlobFileSystem(connection_string=connection_string, skip_instance_cache=True)
        with pytest.raises(HttpResponseError, match="AuthorizationFailure"):
            fs.cat_file(azure_container.path("a"))


def test_gcs_emulator_ignores_credentials(gcs_bucket: Any) -> None:
    """It has no authentication at all: any bearer token reads."""
    gcs_bucket.upload({"a": b"1"})
    url = f"{gcs_bucket.server.endpoint_url}/download/storage/v1/b/{gcs_bucket.name}/o/a?alt=media"
    with get(url, {"Authorization": "Bearer not-a-token"}) as response:
        assert response.read() == b"1"


def test_http_ranges_etag_and_length(http_server: Any) -> None:
    url = http_server.put("models/model.bin", MODEL)
    with get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(MODEL))
        assert response.headers["Accept-Ranges"] == "bytes"
        etag = response.headers["ETag"]
        assert response.read() == MODEL
    with get(url, method="HEAD") as response:
        assert response.headers["Content-Length"] == str(len(MODEL)) and response.read() == b""
    spans = {"bytes=100-199": (100, 200), "bytes=10000-": (10000, 10240), "bytes=-40": (10200, 10240)}
    spans |= {"bytes=10200-99999": (10200, 10240), "bytes=0-": (0, 10240)}
    for wanted, (start, end) in spans.items():
        with get(url, {"Range": wanted}) as response:
            assert response.status == 206, wanted
            assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(MODEL)}"
            assert response.headers["Content-Length"] == str(end - start)
            assert response.read() == MODEL[start:end]
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(url, {"Range": "bytes=20000-"})
    assert refused.value.code == 416
    assert refused.value.headers["Content-Range"] == f"bytes */{len(MODEL)}"
    # If-Range with another ETag (the file changed): the whole new body.
    with get(url, {"Range": "bytes=0-9", "If-Range": '"stale"'}) as response:
        assert response.status == 200 and response.read() == MODEL
    with get(url, {"Range": "bytes=0-9", "If-Range": etag}) as response:
        assert response.status == 206 and response.read() == MODEL[:10]
    with pytest.raises(urllib.error.HTTPError) as missing:
        get(http_server.url_of("nothing-here"))
    assert missing.value.code == 404


def test_http_through_fsspec(http_server: Any) -> None:
    import fsspec

    url = http_server.put("model.bin", MODEL)
    fs = fsspec.filesystem("http", skip_instance_cache=True)
    assert fs.info(url)["size"] == len(MODEL)
    assert fs.cat_file(url, start=5, end=25) == MODEL[5:25]
    assert fs.cat_file(url) == MODEL
    assert http_server.requests_for("model.bin")[-2].headers["range"] == "bytes=5-24"


def test_http_interrupted_then_resumed(http_server: Any) -> None:
    url = http_server.put("model.bin", MODEL)
    http_server.route("model.bin", cut_after=1000, cut_times=1)
    with get(url) as response:
        assert response.headers["Content-Length"] == str(len(MODEL))
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
    assert cut.value.partial == MODEL[:1000]
    # The one cut is spent: a resumed download gets the rest.
    with get(url, {"Range": "bytes=1000-"}) as response:
        assert response.status == 206 and response.read() == MODEL[1000:]
    assert len(http_server.requests_for("model.bin")) == 2
    # What the storage code's clients see: fsspec's HTTP filesystem (aiohttp) too.
    import aiohttp
    import fsspec

    http_server.route("model.bin", cut_after=1000)
    with pytest.raises(aiohttp.ClientPayloadError):
        fsspec.filesystem("http", skip_instance_cache=True).cat_file(url)


def test_http_content_type_status_and_required_header(http_server: Any) -> None:
    url = http_server.put("model.onnx", MODEL)
    http_server.route(
        "model.onnx", content_type="text/html; charset=utf-8", require_headers={"X-Token": "s3cr3t"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(url)
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError):
        get(url, {"X-Token": "wrong"})
    with get(url, {"X-Token": "s3cr3t"}) as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.read() == MODEL
    assert http_server.requests[-1].headers["x-token"] == "s3cr3t"
    http_server.route("error", status=500, body=b"<html>boom</html>", content_type="text/html")
    with pytest.raises(urllib.error.HTTPError) as failed:
        get(http_server.url_of("error"))
    assert failed.value.code == 500 and failed.value.read() == b"<html>boom</html>"
