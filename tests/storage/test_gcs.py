"""gs:// model URIs against a real GCS emulator (conftest's `gcs_server`:
gcp-storage-emulator, which checks no credentials): `core start gs://...`
on a repository prefix with a sibling prefix beside it, a warm cache across
restarts and a changed object, the storage metrics, the MD5s GCS gives,
model-settings.json files whose `parameters.uri` is a gs:// object, load
errors that name the URI while a good model serves, anonymous access,
the console's folder placeholder objects."""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import core
from core.storage import FsspecStore, fetch, storage_for
from core.testing import ServerProcess, json_request

from .conftest import Bucket

MiB = 1024 * 1024
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
SERVE = ("--parallel-workers", "0")
FEATURES = load_iris().data[::10].astype(np.float32)


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


@pytest.fixture
def env(gcs_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The emulator's variables and a cache folder, for a server; no
    GOOGLE_APPLICATION_CREDENTIALS in this process nor in the servers it starts."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return {**gcs_bucket.env, "CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache")}


def predictions(server: ServerProcess, model: str) -> list[int]:
    body = json_request(FEATURES, ["predict"])
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    return list(output["data"])


def storage_metrics(server: ServerProcess, scheme: str) -> dict[str, float]:
    """The metrics endpoint's samples labelled scheme=`scheme`, by name."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("scheme") == scheme and not sample.name.endswith("_created")
    }


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

    with ServerProcess(uri, *SERVE, env=env) as server:
        assert set(index(server)) == {"iris"}
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        cold = storage_metrics(server, "gs")
    assert cold["storage_download_bytes_total"] == len(settings) + len(first.artifact)
    assert cold["storage_download_seconds_count"] == 1
    assert cold.get("storage_cache_hits_total", 0) == 0
    # The prefix's objects only: nothing of the sibling models/iris-v2.
    assert cached_files(cache) == {"model-settings.json": settings, "model.joblib": first.artifact}

    with ServerProcess(uri, *SERVE, env=env) as server:
        assert predictions(server, "iris") == first.estimator.predict(FEATURES).tolist()
        warm = storage_metrics(server, "gs")
    assert warm["storage_cache_hits_total"] >= 1
    assert warm.get("storage_download_bytes_total", 0) == 0

    gcs_bucket.upload({"model.joblib": changed.artifact}, "models/iris")
    with ServerProcess(uri, *SERVE, env=env) as server:
        assert predictions(server, "iris") == changed.estimator.predict(FEATURES).tolist()
        again = storage_metrics(server, "gs")
    assert again.get("storage_cache_hits_total", 0) == 0
    assert again["storage_download_bytes_total"] == len(settings) + len(changed.artifact)
    assert cached_files(cache) == {"model-settings.json": settings, "model.joblib": changed.artifact}


def open_store(uri: str, settings: core.Settings) -> FsspecStore:
    """The store core opens for `uri`: the installed storage's opener."""
    module, _, function = storage_for(uri).open.partition(":")
    store: FsspecStore = getattr(importlib.import_module(module), function)(uri, settings)
    return store


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

    with ServerProcess(repository, *SERVE, env=env, wait_for="/v2/health/live") as server:
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
