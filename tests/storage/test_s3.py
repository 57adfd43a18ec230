"""s3:// model URIs against moto, a real S3 API on loopback (conftest's
`s3_server`, `s3_auth_server` and their buckets), through s3fs as core uses
it: `core start s3://BUCKET/PREFIX` on one model's prefix and on a
repository's, a local model-settings.json whose `parameters.uri` is an
s3:// object, a warm cache across restarts and a changed object, load errors
(missing object or prefix, wrong credentials, an archive that would write
outside its folder) next to models that keep serving, a large object fetched
in parallel byte ranges (its ETag keys the cache, never taken for an MD5),
an object replaced while its ranges are read, and KServe's S3_ENDPOINT /
S3_USE_HTTPS variables."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

import core
from core.errors import ModelLoadError
from core.storage import fetch
from core.storage.s3 import open_s3
from core.testing import ServerProcess

from .conftest import (
    FEATURES,
    IN_PROCESS,
    Bucket,
    MiB,
    Trained,
    check_predictions,
    index,
    iris_settings,
    scrape,
    settled,
    tar_gz,
    train_example,
)


@dataclass(frozen=True)
class Models:
    iris: Trained  # the example's LogisticRegression (examples/iris/train.py)
    other: Trained  # a one-split decision tree: it never predicts one of the classes


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    folder = tmp_path_factory.mktemp("models")
    iris = train_example(folder / "iris.joblib")
    features, labels = load_iris(return_X_y=True)
    other_path = folder / "other.joblib"
    joblib.dump(DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, labels), other_path)
    other = Trained(other_path.read_bytes(), joblib.load(other_path))
    # Which one answers is visible in the predictions.
    assert iris.estimator.predict(FEATURES).tolist() != other.estimator.predict(FEATURES).tolist()
    return Models(iris, other)


def model_folder(name: str, artifact: bytes) -> dict[str, bytes]:
    return {
        f"{name}/model-settings.json": iris_settings("./model.joblib", name),
        f"{name}/model.joblib": artifact,
    }


def server_env(bucket: Bucket, cache: Path, **more: str) -> dict[str, str]:
    return {**bucket.env, "CORE_STORAGE_CACHE_DIR": str(cache), **more}


def cache_files(cache: Path) -> dict[str, bytes]:
    """Every file in the cache but its locks and manifests, by path relative to it."""
    return {
        path.relative_to(cache).as_posix(): path.read_bytes()
        for path in sorted(cache.rglob("*"))
        if path.is_file() and path.suffix != ".lock" and path.name != "manifest.json"
    }


def manifests(cache: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(cache.glob("*/manifest.json"))]


# End to end: `core start s3://...`, a warm cache, a changed object.


def test_core_start_on_a_model_prefix_then_warm_then_changed(
    s3_bucket: Bucket, tmp_path: Path, models: Models
) -> None:
    s3_bucket.upload(model_folder("iris", models.iris.artifact), "models")
    # A sibling whose name starts with the same letters: not part of models/iris.
    s3_bucket.upload(model_folder("iris-v2", models.other.artifact), "models")
    uri = s3_bucket.uri("models/iris")
    cache = tmp_path / "cache"
    env = server_env(s3_bucket, cache)
    size = len(iris_settings("./model.joblib", "iris")) + len(models.iris.artifact)

    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        assert set(index(server)) == {"iris"}
        check_predictions(server, "iris", models.iris.estimator)
        cold = scrape(server, "s3")
    assert cold("storage_download_bytes_total") == size
    assert cold("storage_cache_hits_total") == 0
    files = cache_files(cache)
    assert sorted(Path(name).name for name in files) == ["model-settings.json", "model.joblib"], files
    assert not any("iris-v2" in name for name in files), files
    assert iris_settings("./model.joblib", "iris-v2") not in files.values()
    assert models.other.artifact not in files.values()
    assert [manifest["uri"] for manifest in manifests(cache)] == [uri]
    (content,) = (cache / name for name in files if name.endswith("model.joblib"))
    before = content.stat()

    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        check_predictions(server, "iris", models.iris.estimator)
        warm = scrape(server, "s3")
    assert warm("storage_cache_hits_total") >= 1
    assert warm("storage_download_bytes_total") == 0
    after = content.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # The object changes (another model, another size and ETag): fetched again and served.
    s3_bucket.upload({"iris/model.joblib": models.other.artifact}, "models")
    with ServerProcess(uri, *IN_PROCESS, env=env) as server:
        check_predictions(server, "iris", models.other.estimator)
        changed = scrape(server, "s3")
    assert changed("storage_cache_hits_total") == 0
    new_size = size - len(models.iris.artifact) + len(models.other.artifact)
    assert changed("storage_download_bytes_total") == new_size
    files = cache_files(cache)
    assert len(manifests(cache)) == 1  # the changed entry replaced the old one
    assert models.other.artifact in files.values() and models.iris.artifact not in files.values()


def test_core_start_on_a_repository_prefix_serves_every_model(
    s3_bucket: Bucket, tmp_path: Path, models: Models
) -> None:
    s3_bucket.upload(model_folder("iris", models.iris.artifact), "models")
    s3_bucket.upload(model_folder("iris-v2", models.other.artifact), "models")
    env = server_env(s3_bucket, tmp_path / "cache")
    # Core's defaults: the models load in a worker process, from the fetched folder.
    with ServerProcess(s3_bucket.uri("models"), env=env) as server:
        assert set(index(server)) == {"iris", "iris-v2"}
        check_predictions(server, "iris", models.iris.estimator)
        check_predictions(server, "iris-v2", models.other.estimator)


def test_a_local_model_settings_naming_an_s3_object(
    s3_bucket: Bucket, tmp_path: Path, models: Models
) -> None:
    uri = s3_bucket.uri("models/iris/model.joblib")
    s3_bucket.upload({"iris/model.joblib": models.iris.artifact}, "models")
    repository = tmp_path / "repository"
    (repository / "iris").mkdir(parents=True)
    (repository / "iris" / "model-settings.json").write_bytes(iris_settings(uri, "iris"))
    cache = tmp_path / "cache"
    # Fetched by the server process's registry, loaded by the worker from the local copy.
    with ServerProcess(repository, env=server_env(s3_bucket, cache)) as server:
        check_predictions(server, "iris", models.iris.estimator)
        metrics = scrape(server, "s3")
    assert metrics("storage_download_bytes_total") == len(models.iris.artifact)
    assert list(cache_files(cache).values()) == [models.iris.artifact]
    assert [manifest["uri"] for manifest in manifests(cache)] == [uri]


# Load errors: each names its URI; the other models keep serving.


def test_load_errors_name_the_uri_while_the_other_models_serve(
    s3_bucket: Bucket, tmp_path: Path, models: Models
) -> None:
    s3_bucket.upload({"iris/model.joblib": models.iris.artifact}, "models")
    s3_bucket.upload({"good.tar.gz": tar_gz({"model.joblib": models.iris.artifact})}, "archives")
    # Checked before anything is extracted: a first entry that is fine, then
    # one that would land three folders up from where the archive unpacks
    # (CACHE/.download-*/content), i.e. in tmp_path, outside the cache.
    hostile = tar_gz({"model.joblib": models.iris.artifact, "../../../evil.txt": b"evil"})
    s3_bucket.upload({"model.tar.gz": hostile}, "hostile")
    uris = {
        "from-archive": s3_bucket.uri("archives/good.tar.gz"),
        "missing-object": s3_bucket.uri("models/iris/not-there.joblib"),
        "missing-prefix": s3_bucket.uri("models/nothing-here"),
        # Only starts with the letters of an existing folder (models/iris).
        "prefix-of-a-name": s3_bucket.uri("models/ir"),
        "hostile-archive": s3_bucket.uri("hostile/model.tar.gz"),
    }
    repository = tmp_path / "repository"
    (repository / "local").mkdir(parents=True)
    (repository / "local" / "model-settings.json").write_bytes(iris_settings("./model.joblib", "local"))
    (repository / "local" / "model.joblib").write_bytes(models.iris.artifact)
    for name, uri in uris.items():
        (repository / name).mkdir()
        (repository / name / "model-settings.json").write_bytes(iris_settings(uri, name))
    cache = tmp_path / "cache"
    env = server_env(s3_bucket, cache)

    with ServerProcess(repository, *IN_PROCESS, env=env, wait_for="/v2/health/live") as server:
        found = settled(server, {"local", *uris})
        assert found["local"]["state"] == "READY", found
        assert found["from-archive"]["state"] == "READY", found
        check_predictions(server, "local", models.iris.estimator)
        check_predictions(server, "from-archive", models.iris.estimator)
        failed = {name for name, item in found.items() if item["state"] == "FAILED"}
        assert failed == {"missing-object", "missing-prefix", "prefix-of-a-name", "hostile-archive"}, found
        reasons = {name: found[name]["reason"] for name in failed}
        for name in failed:
            assert uris[name] in reasons[name], reasons
        for name in ("missing-object", "missing-prefix", "prefix-of-a-name"):
            assert f"{uris[name]}: no such object, and no objects under it" in reasons[name], reasons
        assert "'../../../evil.txt'" in reasons["hostile-archive"], reasons
        assert "leaves the model folder" in reasons["hostile-archive"], reasons
        # Still serving after the failures.
        check_predictions(server, "local", models.iris.estimator)

    assert not [path for path in tmp_path.rglob("evil*")], "the hostile entry was written"
    # Only the good archive's entry: no hostile one, no scratch folder left over.
    assert [manifest["uri"] for manifest in manifests(cache)] == [uris["from-archive"]]
    assert not [path for path in cache.iterdir() if path.name.startswith(".")], list(cache.iterdir())


def test_wrong_credentials_are_a_load_error(
    s3_auth_bucket: Bucket, tmp_path: Path, models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_auth_bucket.upload({"iris/model.joblib": models.iris.artifact}, "models")
    uri = s3_auth_bucket.uri("models/iris/model.joblib")
    # The right credentials fetch it: the server checks them, and this one passes.
    s3_auth_bucket.server.setenv(monkeypatch)
    fetched = fetch(uri, core.Settings(storage_cache_dir=str(tmp_path / "in-process")))
    assert fetched.path.read_bytes() == models.iris.artifact

    repository = tmp_path / "repository"
    (repository / "local").mkdir(parents=True)
    (repository / "local" / "model-settings.json").write_bytes(iris_settings("./model.joblib", "local"))
    (repository / "local" / "model.joblib").write_bytes(models.iris.artifact)
    (repository / "private").mkdir()
    (repository / "private" / "model-settings.json").write_bytes(iris_settings(uri, "private"))
    wrong = f"wrong-{secrets.token_hex(8)}"
    env = server_env(s3_auth_bucket, tmp_path / "cache", AWS_SECRET_ACCESS_KEY=wrong)
    with ServerProcess(repository, *IN_PROCESS, env=env, wait_for="/v2/health/live") as server:
        found = settled(server, {"local", "private"})
        assert found["local"]["state"] == "READY", found
        assert found["private"]["state"] == "FAILED", found
        reason = found["private"]["reason"]
        assert f"{uri}: cannot list: PermissionError" in reason, reason
        check_predictions(server, "local", models.iris.estimator)
        log = server.log()
    assert wrong not in reason and wrong not in log
    assert s3_auth_bucket.server.secret_access_key not in reason


# In process: a large object in parallel ranges, an object replaced meanwhile, S3_ENDPOINT.


def ranges_read(records: list[logging.LogRecord], key: str) -> list[tuple[int, int]]:
    """The byte ranges of s3fs's get_object calls for `key` (its DEBUG log:
    "CALL: get_object - () - {... 'Key': ..., 'Range': 'bytes=A-B'}")."""
    found = []
    for record in records:
        message = record.getMessage()
        if record.name == "s3fs" and message.startswith("CALL: get_object") and f"'Key': '{key}'" in message:
            match = re.search(r"'Range': 'bytes=(\d+)-(\d+)'", message)
            assert match is not None, message  # a whole-object GET
            found.append((int(match.group(1)), int(match.group(2)) + 1))
    return sorted(found)


def test_a_large_object_is_fetched_in_parallel_ranges(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s3_bucket.server.setenv(monkeypatch)
    content = np.random.default_rng(40).bytes(40 * MiB + 123)
    local = tmp_path / "large.bin"
    local.write_bytes(content)
    # put_file sends anything under its 50 MiB chunk size in one part: the ETag is the MD5.
    s3_bucket.fs.put_file(str(local), s3_bucket.path("large/model.bin"))
    uri = s3_bucket.uri("large/model.bin")
    settings = core.Settings(storage_cache_dir=str(tmp_path / "cache"), storage_chunk_size=8 * MiB)
    (item,), single = open_s3(uri, settings).list()
    assert single and item.size == len(content)
    assert item.etag == hashlib.md5(content).hexdigest()  # what keys the cache
    # Not taken for an MD5 to check: an ETag is one only for a one-part
    # upload stored unencrypted or with SSE-S3, which a listing does not
    # tell (core/storage/s3.py). The size is checked.
    assert item.md5 is None

    caplog.set_level(logging.DEBUG, logger="s3fs")
    fetched = fetch(uri, settings)
    assert fetched.path.read_bytes() == content
    assert fetched.downloaded == len(content) and not fetched.cache_hit
    chunks = [(start, min(start + 8 * MiB, len(content))) for start in range(0, len(content), 8 * MiB)]
    assert ranges_read(caplog.records, "large/model.bin") == chunks

    # A multipart upload: its ETag is "<hex>-<parts>".
    multipart = content[: 12 * MiB + 5]
    with s3_bucket.fs.open(s3_bucket.path("large/multipart.bin"), "wb", block_size=5 * MiB) as file:
        for start in range(0, len(multipart), 5 * MiB):
            file.write(multipart[start : start + 5 * MiB])
    uri = s3_bucket.uri("large/multipart.bin")
    (item,), _ = open_s3(uri, settings).list()
    assert item.etag is not None and re.fullmatch(r"[0-9a-f]{32}-\d+", item.etag), item.etag
    assert item.md5 is None and item.size == len(multipart)
    caplog.clear()
    assert fetch(uri, settings).path.read_bytes() == multipart
    assert ranges_read(caplog.records, "large/multipart.bin") == [(0, 8 * MiB), (8 * MiB, len(multipart))]


class ReplaceOnRange(logging.Handler):
    """On s3fs's DEBUG line for the `nth` ranged get_object of `key` (logged
    just before the request goes out), replace the object with `content`
    through a client of its own (boto3: s3fs's own calls run on the thread
    that logs): another writer, at a known point of the download."""

    def __init__(self, bucket: Bucket, key: str, nth: int, content: bytes) -> None:
        super().__init__(logging.DEBUG)
        import boto3

        server = bucket.server
        self.client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=server.env["AWS_SECRET_ACCESS_KEY"],
            region_name=server.env["AWS_DEFAULT_REGION"],
        )
        self.bucket, self.key, self.nth, self.content = bucket.name, key, nth, content
        self.ranges = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if (
            message.startswith("CALL: get_object")
            and f"'Key': '{self.key}'" in message
            and "Range" in message
        ):
            self.ranges += 1
            if self.ranges == self.nth:
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self.content)


def test_an_object_replaced_during_a_ranged_download_is_never_mixed(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model retrained and uploaded again while a server fetches it: the
    # same size (a joblib of the same estimator often is), another ETag.
    s3_bucket.server.setenv(monkeypatch)
    old = np.random.default_rng(1).bytes(24 * MiB)
    new = np.random.default_rng(2).bytes(24 * MiB)
    uri = s3_bucket.upload({"model.bin": old}, "mixed") + "/model.bin"
    replace = ReplaceOnRange(s3_bucket, "mixed/model.bin", nth=2, content=new)
    s3fs_logger = logging.getLogger("s3fs")
    level = s3fs_logger.level
    s3fs_logger.addHandler(replace)
    s3fs_logger.setLevel(logging.DEBUG)
    # One range at a time: the first is read before the object changes, the others after.
    settings = core.Settings(
        storage_cache_dir=str(tmp_path / "cache"), storage_chunk_size=8 * MiB, storage_download_workers=1
    )
    try:
        fetched = fetch(uri, settings)
    except ModelLoadError as error:  # seen changing (S3's If-Match on each range): refused
        assert error.message.startswith(f"{uri}: "), error.message
        assert manifests(tmp_path / "cache") == []
    else:  # or one whole version of it, never a mix of both
        content = fetched.path.read_bytes()
        mixed = [
            content[start : start + 8 * MiB] == old[start : start + 8 * MiB]
            for start in range(0, len(old), 8 * MiB)
        ]
        assert content in (old, new), f"chunks from the old object: {mixed}"
    finally:
        s3fs_logger.removeHandler(replace)
        s3fs_logger.setLevel(level)
    assert replace.ranges >= 2  # the object was replaced mid-download


def test_s3_endpoint_and_s3_use_https_reach_the_server(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KServe's variables: a host:port, and plain http (kserve-storage 0.21 reads neither).
    files = {"model-settings.json": b"{}", "model.joblib": b"artifact"}
    uri = s3_bucket.upload(files, "models/ep")
    s3_bucket.server.setenv(monkeypatch)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the only way to moto left is S3_ENDPOINT
    monkeypatch.setenv("S3_ENDPOINT", s3_bucket.server.endpoint_url.removeprefix("http://"))
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    fetched = fetch(uri, core.Settings(storage_cache_dir=str(tmp_path / "cache")))
    assert {path.name: path.read_bytes() for path in fetched.path.iterdir()} == files


def test_a_missing_bucket_is_a_clear_error(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_bucket.server.setenv(monkeypatch)
    uri = f"s3://no-such-bucket-{secrets.token_hex(4)}/models/iris"
    with pytest.raises(ModelLoadError) as raised:
        fetch(uri, core.Settings(storage_cache_dir=str(tmp_path / "cache")))
    assert raised.value.message == f"{uri}: no such object, and no objects under it"
