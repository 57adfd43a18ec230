"""Azure Blob model URIs against azurite (conftest's `azure_server`, which
checks the account key): KServe's form
`https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH` with
AZURE_STORAGE_CONNECTION_STRING pointing at azurite (its BlobEndpoint; the
host only names the account), and `az://CONTAINER/PATH`. `core start URI` on
a repository prefix with a sibling prefix beside it, a warm cache across
restarts and a changed blob, the storage metrics, Content-MD5 checked (a
wrong one refused), model-settings.json files whose `parameters.uri` is a
blob, load errors that name the URI while a good model serves, a wrong
account key that no error or log line shows; a blob URL percent-encoded as
Azure gives it, a URL of another account, folder marker blobs."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient, ContentSettings

import core
from core.errors import ModelLoadError
from core.storage import fetch
from core.testing import ServerProcess

from .conftest import (
    FEATURES,
    IN_PROCESS,
    AzureServer,
    Bucket,
    MiB,
    Trained,
    cached_files,
    index,
    iris_settings,
    open_store,
    predictions,
    settled,
    storage_metrics,
)


def https_uri(container: Bucket, path: str) -> str:
    """KServe's form. Only the connection string (its BlobEndpoint) says
    where the account is: azurite, the one place these blobs exist."""
    server: AzureServer = container.server  # type: ignore[assignment]
    return f"https://{server.account_name}.blob.core.windows.net/{container.path(path)}"


def uri_of(form: str, container: Bucket, path: str) -> str:
    return https_uri(container, path) if form == "https" else container.uri(path)


def server_env(container: Bucket, tmp_path: Path) -> dict[str, str]:
    """The connection string, the account for az:// URIs, a cache folder."""
    server: AzureServer = container.server  # type: ignore[assignment]
    return {
        **container.env,
        "AZURE_STORAGE_ACCOUNT_NAME": server.account_name,
        "CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache"),
    }


@pytest.mark.parametrize("form", ["https", "az"])
def test_core_start_on_a_blob_prefix_then_warm_then_changed(
    azure_container: Bucket, tmp_path: Path, iris: tuple[Trained, Trained], form: str
) -> None:
    first, changed = iris
    settings = iris_settings("./model.joblib")
    azure_container.upload({"model-settings.json": settings, "model.joblib": first.artifact}, "models/iris")
    sibling = {
        "model-settings.json": iris_settings("./model.joblib", "iris-v2"),
        "model.joblib": changed.artifact,
        "notes.txt": "iris-v2 only",
    }
    azure_container.upload(sibling, "models/iris-v2")
    uri = uri_of(form, azure_container, "models/iris")
    env = server_env(azure_container, tmp_path)
    cache = tmp_path / "cache"

    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        assert set(index(server)) == {"iris"}
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        cold = storage_metrics(server, form)  # the URI's scheme: "https" or "az"
    assert cold["storage_download_bytes_total"] == len(settings) + len(first.artifact)
    assert cold["storage_download_seconds_count"] == 1
    assert cold.get("storage_cache_hits_total", 0) == 0
    # The prefix's blobs only: nothing of the sibling models/iris-v2.
    assert cached_files(cache) == {"model-settings.json": settings, "model.joblib": first.artifact}

    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        warm = storage_metrics(server, form)
    assert warm["storage_cache_hits_total"] >= 1
    assert warm.get("storage_download_bytes_total", 0) == 0

    azure_container.upload({"model.joblib": changed.artifact}, "models/iris")
    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        assert predictions(server, "iris") == changed.estimator.predict(FEATURES).tolist()
        again = storage_metrics(server, form)
    assert again.get("storage_cache_hits_total", 0) == 0
    assert again["storage_download_bytes_total"] == len(settings) + len(changed.artifact)
    assert cached_files(cache) == {"model-settings.json": settings, "model.joblib": changed.artifact}


def test_content_md5_is_checked_and_a_wrong_one_refused(
    azure_container: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: AzureServer = azure_container.server  # type: ignore[assignment]
    for name, value in server_env(azure_container, tmp_path).items():
        monkeypatch.setenv(name, value)
    small = b"a small blob\n" * 10
    large = np.random.default_rng(5).bytes(3 * MiB + 5)
    azure_container.upload({"small.bin": small, "large.bin": large}, "blobs")
    settings = core.Settings(storage_cache_dir=str(tmp_path / "cache"), storage_chunk_size=MiB)
    contents = {"small.bin": small, "large.bin": large}  # large.bin: in 4 parallel byte ranges

    for name, content in contents.items():
        uri = https_uri(azure_container, f"blobs/{name}")
        (item,), single = open_store(uri, settings).list()
        assert single and item.md5 == hashlib.md5(content).digest()  # azurite's Content-MD5
        assert fetch(uri, settings).path.read_bytes() == content

    # The blobs' bytes stay; their Content-MD5 now names other bytes.
    wrong = bytearray(hashlib.md5(b"other bytes").digest())
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        for name in contents:
            blob = service.get_blob_client(azure_container.name, f"blobs/{name}")
            blob.set_http_headers(ContentSettings(content_type="application/octet-stream", content_md5=wrong))
    cold = core.Settings(storage_cache_dir=str(tmp_path / "cold"), storage_chunk_size=MiB)
    for name in contents:
        uri = https_uri(azure_container, f"blobs/{name}")
        (item,), _ = open_store(uri, settings).list()
        assert item.md5 == bytes(wrong)
        for where in (settings, cold):  # with a cache entry of the right bytes, with none
            with pytest.raises(ModelLoadError) as raised:
                fetch(uri, where)
            assert raised.value.message == f"{uri}: {name}: its MD5 is not the one the store gives: corrupted"
    assert cached_files(tmp_path / "cold") == {}


def test_a_blob_url_percent_encoded_as_azure_gives_it_is_fetched(
    azure_container: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob URL's path is percent-encoded, as Azure gives it (the SDK's
    `BlobClient.url`, the portal's URL property): "my model" is "my%20model"."""
    server: AzureServer = azure_container.server  # type: ignore[assignment]
    for name, value in server_env(azure_container, tmp_path).items():
        monkeypatch.setenv(name, value)
    azure_container.upload({"model.joblib": b"weights"}, "models/my model")
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        url = service.get_blob_client(azure_container.name, "models/my model/model.joblib").url
    path = urlsplit(url).path.removeprefix(f"/{server.account_name}/")
    assert path == f"{azure_container.name}/models/my%20model/model.joblib"
    blob = f"https://{server.account_name}.blob.core.windows.net/{path}"
    settings = core.Settings(storage_cache_dir=str(tmp_path / "cache"))
    assert fetch(blob, settings).path.read_bytes() == b"weights"
    folder = fetch(blob.removesuffix("/model.joblib"), settings).path
    assert (folder / "model.joblib").read_bytes() == b"weights"


def test_a_url_of_another_account_is_not_read_from_the_connection_strings_account(
    azure_container: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host names the account: with a connection string for
    devstoreaccount1, https://otheraccount.blob.core.windows.net/... is not
    devstoreaccount1's blob. An error naming the URI, not another account's
    model."""
    server: AzureServer = azure_container.server  # type: ignore[assignment]
    for name, value in server_env(azure_container, tmp_path).items():
        monkeypatch.setenv(name, value)
    azure_container.upload({"model.joblib": b"devstoreaccount1's weights"}, "models/iris")
    uri = f"https://otheraccount.blob.core.windows.net/{azure_container.path('models/iris')}"
    with pytest.raises(ModelLoadError) as raised:
        fetch(uri, core.Settings(storage_cache_dir=str(tmp_path / "cache")))
    assert raised.value.message.startswith(f"{uri}: "), raised.value.message
    assert server.account_key not in raised.value.message
    assert cached_files(tmp_path / "cache") == {}


def test_folder_marker_blobs_are_not_downloaded(
    azure_container: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty blobs with metadata hdi_isfolder=true, as Azure Storage
    Explorer and hierarchical-namespace tools make for folders, are folders:
    the files below them are fetched, never a file of the marker's name."""
    server: AzureServer = azure_container.server  # type: ignore[assignment]
    for name, value in server_env(azure_container, tmp_path).items():
        monkeypatch.setenv(name, value)
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        container = service.get_container_client(azure_container.name)
        for marker in ("models/iris", "models/iris/sub"):
            container.upload_blob(marker, b"", metadata={"hdi_isfolder": "true"})
    azure_container.upload({"model.joblib": b"weights", "sub/config.json": b"{}"}, "models/iris")
    fetched = fetch(
        azure_container.uri("models/iris"), core.Settings(storage_cache_dir=str(tmp_path / "cache"))
    )
    assert cached_files(tmp_path / "cache") == {"model.joblib": b"weights", "sub/config.json": b"{}"}
    assert fetched.downloaded == len(b"weights{}")


def test_model_settings_with_blob_uris_some_missing(
    azure_container: Bucket, tmp_path: Path, iris: tuple[Trained, Trained]
) -> None:
    first, _ = iris
    azure_container.upload({"model.joblib": first.artifact}, "models/iris")
    good = https_uri(azure_container, "models/iris/model.joblib")
    missing = {
        "gone": https_uri(azure_container, "models/gone"),  # no such prefix in the container
        "gone-az": azure_container.uri("models/gone"),
        "nocontainer": "az://no-such-container/models/iris",
    }
    repository = tmp_path / "repository"
    for name, uri in {"iris": good, **missing}.items():
        (repository / name).mkdir(parents=True)
        (repository / name / "model-settings.json").write_bytes(iris_settings(uri, name))
    env = server_env(azure_container, tmp_path)

    with ServerProcess(repository, *IN_PROCESS, env=env, wait_for="/v2/health/live") as server:
        found = settled(server, {"iris", *missing})
        assert found["iris"]["state"] == "READY", found
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        for name, uri in missing.items():
            assert found[name]["state"] == "FAILED", found
            assert found[name]["reason"] == f"{uri}: no such object, and no objects under it", found
        metrics = storage_metrics(server, "https")
    assert metrics["storage_download_bytes_total"] == len(first.artifact)
    assert cached_files(tmp_path / "cache") == {"model.joblib": first.artifact}


def test_a_wrong_account_key_is_a_load_error_that_never_shows_the_key(
    azure_container: Bucket, tmp_path: Path, iris: tuple[Trained, Trained]
) -> None:
    """azurite checks the shared-key signature: a connection string with
    another AccountKey is refused (403). The model that needs the blob
    fails, naming its URI; a local model serves; neither the index nor the
    server's log (at DEBUG, the Azure SDK's request logging included) shows
    the key."""
    server: AzureServer = azure_container.server  # type: ignore[assignment]
    first, _ = iris
    azure_container.upload({"model.joblib": first.artifact}, "models/iris")
    remote = https_uri(azure_container, "models/iris/model.joblib")
    wrong_key = base64.b64encode(b"not-the-account-key-" * 3 + b"abcd").decode()
    assert len(base64.b64decode(wrong_key)) == 64 and wrong_key != server.account_key
    repository = tmp_path / "repository"
    (repository / "local").mkdir(parents=True)
    (repository / "local" / "model.joblib").write_bytes(first.artifact)
    (repository / "local" / "model-settings.json").write_bytes(iris_settings("./model.joblib", "local"))
    (repository / "remote").mkdir()
    (repository / "remote" / "model-settings.json").write_bytes(iris_settings(remote, "remote"))
    env = {
        **server_env(azure_container, tmp_path),
        "AZURE_STORAGE_CONNECTION_STRING": server.connection_string.replace(server.account_key, wrong_key),
    }
    assert wrong_key in env["AZURE_STORAGE_CONNECTION_STRING"]

    args = (*IN_PROCESS, "--log-level", "DEBUG")
    with ServerProcess(repository, *args, env=env, wait_for="/v2/health/live") as process:
        found = settled(process, {"local", "remote"})
        assert found["local"]["state"] == "READY", found
        assert predictions(process, "local") == first.estimator.predict(FEATURES).tolist()
        assert found["remote"]["state"] == "FAILED", found
        reason = found["remote"]["reason"]
        assert reason.startswith(f"{remote}: cannot list: "), reason
        assert "Server failed to authenticate the request" in reason, reason
        log = process.log()
    assert "AuthorizationFailure" in log  # the request was made, and refused
    for text in (reason, log):
        assert wrong_key not in text
        assert "AccountKey" not in text
    assert cached_files(tmp_path / "cache") == {}
