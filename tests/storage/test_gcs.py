"""gs:// model URIs against a real GCS emulator (conftest's `gcs_server`:
gcp-storage-emulator, which checks no credentials): `core start gs://...`
on a repository prefix with a sibling prefix beside it, a warm cache across
restarts and a changed object, the storage metrics, the MD5s GCS gives,
model-settings.json files whose `parameters.uri` is a gs:// object, load
errors that name the URI while a good model serves, anonymous access,
the console's folder placeholder objects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import core
from core.storage import fetch
from core.testing import ServerProcess

from .conftest import (
    FEATURES,
    IN_PROCESS,
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


@pytest.fixture
def env(gcs_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The emulator's variables and a cache folder, for a server; no
    GOOGLE_APPLICATION_CREDENTIALS in this process nor in the servers it starts."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return {**gcs_bucket.env, "CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache")}


def test_core_start_on_a_gs_prefix_then_warm_then_changed(
    gcs_bucket: Bucket, env: dict[str, str], tmp_path: Path, iris: tuple[Trained, Trained]
) -> None:
    first, changed = iris
    settings = iris_settings("./model.joblib")
    uri = gcs_bucket.upload({"model-settings.json": settings, "model.joblib": first.artifact}, "models/iris")
    sibling = {
        "model-settings.json": iris_settings("./model.joblib", "iris-v2"),
        "model.joblib": changed.artifact,
        "notes.txt": "iris-v2 only",
    }
    gcs_bucket.upload(sibling, "models/iris-v2")
    assert uri == f"gs://{gcs_bucket.name}/models/iris"
    cache = tmp_path / "cache"

    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        assert set(index(server)) == {"iris"}
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        cold = storage_metrics(server, "gs")
    assert cold["storage_download_bytes_total"] == len(settings) + len(first.artifact)
    assert cold["storage_download_seconds_count"] == 1
    assert cold.get("storage_cache_hits_total", 0) == 0
    # The prefix's objects only: nothing of the sibling models/iris-v2.
    assert cached_files(cache) == {"model-settings.json": settings, "model.joblib": first.artifact}

    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        warm = storage_metrics(server, "gs")
    assert warm["storage_cache_hits_total"] >= 1
    assert warm.get("storage_download_bytes_total", 0) == 0

    gcs_bucket.upload({"model.joblib": changed.artifact}, "models/iris")
    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        assert predictions(server, "iris") == changed.estimator.predict(FEATURES).tolist()
        again = storage_metrics(server, "gs")
    assert again.get("storage_cache_hits_total", 0) == 0
    assert again["storage_download_bytes_total"] == len(settings) + len(changed.artifact)
    assert cached_files(cache) == {"model-settings.json": settings, "model.joblib": changed.artifact}


def test_gs_objects_come_with_their_md5_and_fetch_checked(
    gcs_bucket: Bucket, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No corrupted object here: the emulator, as GCS, computes an object's
    # md5Hash from its bytes (GCS refuses an upload whose stated md5Hash
    # differs, and has no call that sets another), so no object can honestly
    # be made to disagree with its MD5. What is asserted is that core has
    # the store's MD5 of every object to check its download against, a small
    # object and one fetched in parallel byte ranges alike. That a wrong MD5
    # is refused: test_fetch.py (localbadmd5), and test_azure.py with azurite.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    small = b"a small object\n" * 10
    large = np.random.default_rng(3).bytes(3 * MiB + 5)
    uri = gcs_bucket.upload({"small.bin": small, "sub/large.bin": large}, "objects")
    settings = core.Settings(storage_cache_dir=str(tmp_path / "cache"), storage_chunk_size=MiB)

    objects, single = open_store(uri, settings).list()
    assert not single
    assert {item.name: item.md5 for item in objects} == {
        "small.bin": hashlib.md5(small).digest(),
        "sub/large.bin": hashlib.md5(large).digest(),
    }
    fetched = fetch(uri, settings)
    assert (fetched.path / "small.bin").read_bytes() == small
    assert (fetched.path / "sub" / "large.bin").read_bytes() == large
    assert fetched.downloaded == len(small) + len(large)

    (item,), single = open_store(f"{uri}/small.bin", settings).list()
    assert single and item.md5 == hashlib.md5(small).digest()
    assert fetch(f"{uri}/small.bin", settings).path.read_bytes() == small


def test_folder_placeholder_objects_are_not_downloaded(
    gcs_bucket: Bucket, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty objects named `folder/`, as the Cloud console's "Create folder"
    makes them, are folders: the files below them are fetched, nothing else."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    options = {"api_endpoint": gcs_bucket.server.endpoint_url}
    client = storage.Client(
        project="storage-tests", credentials=AnonymousCredentials(), client_options=options
    )
    for marker in ("models/iris/", "models/iris/sub/"):
        client.bucket(gcs_bucket.name).blob(marker).upload_from_string(b"")
    uri = gcs_bucket.upload({"model.joblib": b"weights", "sub/config.json": b"{}"}, "models/iris")
    markers = [key for key in gcs_bucket.fs.find(gcs_bucket.path("models")) if key.endswith("/")]
    assert markers == [f"{gcs_bucket.name}/models/iris/", f"{gcs_bucket.name}/models/iris/sub/"]
    fetched = fetch(uri, core.Settings(storage_cache_dir=str(tmp_path / "cache")))
    assert cached_files(tmp_path / "cache") == {"model.joblib": b"weights", "sub/config.json": b"{}"}
    assert fetched.downloaded == len(b"weights{}")


def test_model_settings_with_gs_uris_some_missing(
    gcs_bucket: Bucket, env: dict[str, str], tmp_path: Path, iris: tuple[Trained, Trained]
) -> None:
    first, _ = iris
    gcs_bucket.upload({"model.joblib": first.artifact}, "models/iris")
    good = gcs_bucket.uri("models/iris/model.joblib")
    missing = {
        "gone": gcs_bucket.uri("models/gone"),  # no such prefix in the bucket
        "nobucket": "gs://no-such-bucket/models/iris",
    }
    repository = tmp_path / "repository"
    for name, uri in {"iris": good, **missing}.items():
        (repository / name).mkdir(parents=True)
        (repository / name / "model-settings.json").write_bytes(iris_settings(uri, name))

    with ServerProcess(repository, *IN_PROCESS, env=env, wait_for="/v2/health/live") as server:
        found = settled(server, {"iris", *missing})
        assert found["iris"]["state"] == "READY", found
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        for name, uri in missing.items():
            assert found[name]["state"] == "FAILED", found
            assert found[name]["reason"] == f"{uri}: no such object, and no objects under it", found
        metrics = storage_metrics(server, "gs")
    assert metrics["storage_download_bytes_total"] == len(first.artifact)
    assert cached_files(tmp_path / "cache") == {"model.joblib": first.artifact}


def test_anonymous_access_to_the_emulator(
    gcs_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST set: no
    credentials are looked for (none of Google's default ones either), and
    the objects are fetched."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_bucket.server.endpoint_url)
    uri = gcs_bucket.upload({"model.joblib": b"weights"}, "anonymous")
    settings = core.Settings(storage_cache_dir=str(tmp_path / "cache"))
    assert open_store(uri, settings).fs.credentials.method == "anon"
    fetched = fetch(f"{uri}/model.joblib", settings)
    assert fetched.path.read_bytes() == b"weights"
    assert fetched.scheme == "gs" and fetched.downloaded == len(b"weights")
