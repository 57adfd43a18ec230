"""core.storage.fetch in process, against a real store: the local fsspec
filesystem, served under the `localtest://` scheme (and a few variants) by a
plugin registered through the `core_storage` hook, as a third-party plugin
adds a scheme. The store's files live under a temporary folder (`ROOT`):
`localtest://iris` is ROOT/iris.

The variants wrap the real store to count its calls, to claim a wrong size
or MD5, or to make two fetches meet: what they change is the store's word,
never the code under test (the listing, the cache, the download, the
unpacking)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import random
import stat
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
import pytest

import core
from core.errors import ModelLoadError
from core.plugins import PluginManager, Storage, hookimpl
from core.plugins import manager as manager_module
from core.storage import FsspecStore, RemoteObject, fetch, redact, storage_for

MiB = 1024 * 1024
SECRET = "s3cr3t-t0ken"

# The store's root folder, set by the `store` fixture for each test.
ROOT = Path("/nonexistent")


# The openers the plugin names (`module:function`, imported by core.storage).


def _path_of(uri: str) -> str:
    """ROOT/HOST/PATH for SCHEME://[user:password@]HOST/PATH[?query]."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return str(ROOT / host / parts.path.lstrip("/"))


def open_local(uri: str, settings: core.Settings) -> FsspecStore:
    return FsspecStore(fsspec.filesystem("file"), _path_of(uri), redact(uri))


@dataclasses.dataclass
class Calls:
    """What the counting stores were asked, across every store opened."""

    reads: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
    downloads: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


CALLS = Calls()


class CountingStore(FsspecStore):
    def read(self, item: RemoteObject, start: int, end: int) -> bytes:
        with CALLS.lock:
            CALLS.reads.append((item.name, start, end))
        return super().read(item, start, end)

    def download(self, item: RemoteObject, path: Path) -> None:
        with CALLS.lock:
            CALLS.downloads.append(item.name)
        super().download(item, path)


def open_counting(uri: str, settings: core.Settings) -> FsspecStore:
    return CountingStore(fsspec.filesystem("file"), _path_of(uri), redact(uri))


# How far off the size the `localwrongsize` store claims is (the `store` fixture resets it).
SIZE_OFFSET = [0]


class WrongSizeStore(FsspecStore):
    def list(self) -> tuple[list[RemoteObject], bool]:
        objects, single = super().list()
        return [dataclasses.replace(o, size=(o.size or 0) + SIZE_OFFSET[0]) for o in objects], single


def open_wrong_size(uri: str, settings: core.Settings) -> FsspecStore:
    return WrongSizeStore(fsspec.filesystem("file"), _path_of(uri), redact(uri))


def _true_md5(info: dict[str, Any]) -> bytes:
    return hashlib.md5(Path(info["name"]).read_bytes(), usedforsecurity=False).digest()


def open_true_md5(uri: str, settings: core.Settings) -> FsspecStore:
    return FsspecStore(fsspec.filesystem("file"), _path_of(uri), redact(uri), _true_md5)


def open_wrong_md5(uri: str, settings: core.Settings) -> FsspecStore:
    wrong = hashlib.md5(b"not these bytes", usedforsecurity=False).digest()
    return FsspecStore(fsspec.filesystem("file"), _path_of(uri), redact(uri), lambda info: wrong)


class Race:
    """Two fetches of one URI that list it together, then race to download."""

    def __init__(self) -> None:
        self.listed = threading.Barrier(2, timeout=30)
        self.downloads: list[str] = []
        self.second_download = threading.Event()
        self.lock = threading.Lock()


RACE = [Race()]


class RacingStore(FsspecStore):
    def list(self) -> tuple[list[RemoteObject], bool]:
        listed = super().list()
        RACE[0].listed.wait()  # both fetches have listed: both go for the cache entry now
        return listed

    def download(self, item: RemoteObject, path: Path) -> None:
        race = RACE[0]
        with race.lock:
            race.downloads.append(item.name)
            first = len(race.downloads) == 1
        if first:
            # Give the other fetch every chance to download too: without the
            # entry's lock it would, since nothing is in the cache yet.
            race.second_download.wait(0.5)
        else:
            race.second_download.set()
        super().download(item, path)


def open_racing(uri: str, settings: core.Settings) -> FsspecStore:
    return RacingStore(fsspec.filesystem("file"), _path_of(uri), redact(uri))


class LocalStoragePlugin:
    """A third-party plugin's `core_storage` hook."""

    @hookimpl
    def core_storage(self) -> list[Storage]:
        here = __name__
        return [
            Storage(("localtest",), f"{here}:open_local", "local files through fsspec"),
            Storage(("localcount",), f"{here}:open_counting"),
            Storage(("localwrongsize",), f"{here}:open_wrong_size"),
            Storage(("localmd5",), f"{here}:open_true_md5"),
            Storage(("localbadmd5",), f"{here}:open_wrong_md5"),
            Storage(("localrace",), f"{here}:open_racing"),
            # A scheme whose library is not installed: its opener's module does not exist.
            Storage(
                ("zzz",),
                "core_zzz_not_installed.storage:open_zzz",
                "needs an extra",
                "pip install 'core[zzz]'",
            ),
        ]


# Fixtures and helpers.


@pytest.fixture(autouse=True)
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh plugin manager (the installed plugins, and this module's),
    the store's root folder, and counters set to zero."""
    manager = PluginManager()
    manager.register(LocalStoragePlugin(), "test-local")
    monkeypatch.setattr(manager_module, "_manager", manager)
    root = tmp_path / "store"
    root.mkdir()
    here = sys.modules[__name__]  # the module core.storage imports the openers from
    monkeypatch.setattr(here, "ROOT", root)
    monkeypatch.setattr(here, "CALLS", Calls())
    monkeypatch.setattr(here, "RACE", [Race()])
    monkeypatch.setattr(here, "SIZE_OFFSET", [0])
    yield root


def settings(tmp_path: Path, **values: Any) -> core.Settings:
    return core.Settings(storage_cache_dir=str(tmp_path / "cache"), **values)


def write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def cache_entries(tmp_path: Path) -> list[str]:
    """What the cache folder holds besides its lock files."""
    cache = tmp_path / "cache"
    if not cache.exists():
        return []
    return sorted(path.name for path in cache.iterdir() if not path.name.endswith(".lock"))


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


IRIS = {
    "model-settings.json": b'{"name": "iris", "implementation": "sklearn"}',
    "model.joblib": data(3000, seed=1),
    "sub/deeper/weights.bin": data(500, seed=2),
}


def tick(scratch: Path) -> None:
    """Wait until the file system's clock has moved on: every file written
    before this call is older than every file written after it (file times
    come from a coarse clock: writes close together can share one)."""
    probe = scratch / "clock-probe"
    probe.write_bytes(b"")
    before = probe.stat().st_mtime_ns
    while probe.stat().st_mtime_ns <= before:
        os.utime(probe)


# The plugin's scheme, through the hook.


def test_a_plugins_scheme_is_served_through_the_core_storage_hook() -> None:
    storage = storage_for("localtest://iris")
    assert storage.open == f"{__name__}:open_local"
    assert storage.schemes == ("localtest",)
    info = next(info for info in manager_module.get_plugin_manager().plugins if info.name == "test-local")
    assert "localtest" in {scheme for s in info.storages for scheme in s.schemes}


# Listing.


def test_a_folder_is_fetched_by_exact_prefix_with_its_subfolders(store: Path, tmp_path: Path) -> None:
    write(store / "iris", IRIS)
    write(store / "iris-v2", {"model.joblib": b"the sibling's", "extra.txt": b"not iris"})
    write(store, {"iris.txt": b"a file beside the folder"})
    fetched = fetch("localtest://iris", settings(tmp_path))
    assert fetched.path.is_dir()
    assert files_under(fetched.path) == IRIS
    assert fetched.scheme == "localtest"
    assert not fetched.cache_hit
    assert fetched.downloaded == sum(len(content) for content in IRIS.values())


def test_a_single_object_is_fetched_as_a_file(store: Path, tmp_path: Path) -> None:
    write(store / "iris", IRIS)
    fetched = fetch("localtest://iris/model.joblib", settings(tmp_path))
    assert fetched.path.is_file()
    assert fetched.path.name == "model.joblib"
    assert fetched.path.read_bytes() == IRIS["model.joblib"]
    assert fetched.downloaded == len(IRIS["model.joblib"])


def test_no_object_is_an_error_naming_the_uri(store: Path, tmp_path: Path) -> None:
    write(store / "iris", IRIS)
    with pytest.raises(ModelLoadError) as raised:
        fetch("localtest://iris/not-there", settings(tmp_path))
    assert "localtest://iris/not-there" in raised.value.message
    assert cache_entries(tmp_path) == []


# The cache.


def test_an_unchanged_uri_comes_from_the_cache_without_a_download(store: Path, tmp_path: Path) -> None:
    write(store / "iris", IRIS)
    first = fetch("localcount://iris", settings(tmp_path))
    assert not first.cache_hit
    assert sorted(CALLS.downloads) == sorted(IRIS)
    CALLS.downloads.clear()

    second = fetch("localcount://iris", settings(tmp_path))
    assert second.cache_hit
    assert second.downloaded == 0
    assert second.path == first.path
    assert files_under(second.path) == IRIS
    assert CALLS.downloads == [] and CALLS.reads == []


@pytest.mark.parametrize("change", ["other size", "same size, later mtime"])
def test_a_changed_object_is_fetched_again(store: Path, tmp_path: Path, change: str) -> None:
    write(store / "iris", IRIS)
    first = fetch("localtest://iris/model.joblib", settings(tmp_path))
    assert first.path.read_bytes() == IRIS["model.joblib"]

    artifact = store / "iris" / "model.joblib"
    old = artifact.stat()
    if change == "other size":
        new = data(4321, seed=99)
    else:
        new = bytes(reversed(IRIS["model.joblib"]))
        assert len(new) == old.st_size and new != IRIS["model.joblib"]
    artifact.write_bytes(new)
    os.utime(artifact, ns=(old.st_atime_ns, old.st_mtime_ns + 10**10))  # 10 s later

    second = fetch("localtest://iris/model.joblib", settings(tmp_path))
    assert not second.cache_hit
    assert second.downloaded == len(new)
    assert second.path.read_bytes() == new
    # The old copy was replaced, not kept beside it.
    assert cache_entries(tmp_path) == [second.path.parent.parent.name]


def test_the_least_recently_used_entry_is_evicted(store: Path, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write(store / name, {"model.bin": data(10_000, seed=ord(name))})
    # Two entries (10 kB and a manifest each) fit, three do not.
    limited = settings(tmp_path, storage_cache_size=25_000)
    a = fetch("localtest://a", limited)
    tick(tmp_path)
    b = fetch("localtest://b", limited)
    tick(tmp_path)
    again = fetch("localtest://a", limited)  # `a` used again: `b` is now the least recently used
    assert again.cache_hit
    tick(tmp_path)
    c = fetch("localtest://c", limited)

    assert a.path.exists() and c.path.exists()
    assert not b.path.exists()
    assert len(cache_entries(tmp_path)) == 2
    total = sum(path.stat().st_size for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert total <= 25_000
    assert fetch("localtest://a", limited).cache_hit
    assert fetch("localtest://c", limited).cache_hit


def test_two_fetches_of_one_uri_at_once_download_it_once(store: Path, tmp_path: Path) -> None:
    write(store / "iris", IRIS)
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(fetch, "localrace://iris/model.joblib", settings(tmp_path)) for _ in range(2)]
        results = [job.result(timeout=60) for job in jobs]
    assert RACE[0].downloads == ["model.joblib"]
    assert sorted(result.cache_hit for result in results) == [False, True]
    assert results[0].path == results[1].path
    assert results[0].path.read_bytes() == IRIS["model.joblib"]


# The download.


def test_a_large_object_is_fetched_in_parallel_byte_ranges(store: Path, tmp_path: Path) -> None:
    large = data(5 * MiB + 123, seed=5)
    write(store / "big", {"weights.bin": large})
    assert FsspecStore.ranges is True
    fetched = fetch("localcount://big/weights.bin", settings(tmp_path, storage_chunk_size=MiB))
    assert fetched.path.read_bytes() == large
    assert fetched.downloaded == len(large)
    assert CALLS.downloads == []  # never as one whole download
    spans = sorted((start, end) for _, start, end in CALLS.reads)
    assert spans == [(start, min(start + MiB, len(large))) for start in range(0, len(large), MiB)]


@pytest.mark.parametrize(
    ("size", "offset"),
    [(100, 50), (100, -40), (2 * MiB + 1, MiB)],
    ids=["claims more", "claims less", "claims more, in ranges"],
)
def test_a_size_other_than_the_stores_is_refused(store: Path, tmp_path: Path, size: int, offset: int) -> None:
    write(store / "m", {"model.bin": data(size)})
    SIZE_OFFSET[0] = offset
    with pytest.raises(ModelLoadError) as raised:
        fetch("localwrongsize://m/model.bin", settings(tmp_path, storage_chunk_size=MiB))
    message = raised.value.message
    assert "localwrongsize://m/model.bin" in message
    assert "model.bin" in message and "interrupted" in message
    assert cache_entries(tmp_path) == []  # no entry, no scratch folder


def test_an_md5_the_store_vouches_for_is_checked(store: Path, tmp_path: Path) -> None:
    write(store / "iris", IRIS)
    good = fetch("localmd5://iris", settings(tmp_path))
    assert files_under(good.path) == IRIS

    with pytest.raises(ModelLoadError) as raised:
        fetch("localbadmd5://iris/model.joblib", settings(tmp_path / "other"))
    assert "localbadmd5://iris/model.joblib" in raised.value.message
    assert "MD5" in raised.value.message
    assert cache_entries(tmp_path / "other") == []


# Archives.

MODEL_FOLDER = {
    "model-settings.json": b'{"name": "iris"}',
    "model.joblib": data(2000, seed=7),
    "nested/vocabulary.txt": b"a\nb\n",
}


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str) -> None:
    with tarfile.open(path, mode) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content) if content is not None else None)


def _file(name: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(content), 0o644
    return info, content


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _zip(path: Path, entries: list[tuple[str, bytes, int | None]]) -> None:
    """Each (name, content, st_mode or None)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, content)


@pytest.mark.parametrize("name", ["model.tar.gz", "model.tgz", "model.tar", "model.zip"])
def test_an_archive_of_a_model_folder_is_unpacked(store: Path, tmp_path: Path, name: str) -> None:
    archive = store / "archives" / name
    archive.parent.mkdir()
    if name.endswith(".zip"):
        _zip(archive, [(entry, content, None) for entry, content in MODEL_FOLDER.items()])
    else:
        members = [_file(entry, content) for entry, content in MODEL_FOLDER.items()]
        members.append(_link("latest.joblib", "model.joblib", tarfile.SYMTYPE))  # inside: fine
        _tar(archive, members, "w:gz" if name.endswith(("gz", "tgz")) else "w")
    fetched = fetch(f"localtest://archives/{name}", settings(tmp_path))
    assert fetched.path.is_dir()
    assert files_under(fetched.path) == MODEL_FOLDER
    if not name.endswith(".zip"):
        assert (fetched.path / "latest.joblib").read_bytes() == MODEL_FOLDER["model.joblib"]
    # The archive itself is not kept beside its content.
    assert not any(path.name == name for path in (tmp_path / "cache").rglob("*"))
    assert fetch(f"localtest://archives/{name}", settings(tmp_path)).cache_hit


def _hostile(case: str, path: Path, outside: Path) -> tuple[str, str]:
    """Write the hostile archive `case` at `path` (its name ends as its
    kind says); the entry the refusal must name."""
    good = _file("model.joblib", b"model")
    if case == "tar ../":
        _tar(path, [good, _file("../evil.txt", b"evil")], "w:gz")
        return "tar.gz", "../evil.txt"
    if case == "tar nested ../":
        _tar(path, [good, _file("sub/../../evil.txt", b"evil")], "w:gz")
        return "tar.gz", "sub/../../evil.txt"
    if case == "tar absolute":
        _tar(path, [good, _file(str(outside / "evil.txt"), b"evil")], "w:gz")
        return "tar.gz", str(outside / "evil.txt")
    if case == "tar symlink out":
        # The link, then a file written through it.
        link = _link("escape", "../../../../../../../../outside", tarfile.SYMTYPE)
        _tar(path, [good, link, _file("escape/evil.txt", b"evil")], "w")
        return "tar", "escape"
    if case == "tar absolute symlink":
        _tar(path, [good, _link("passwd", str(outside / "target.txt"), tarfile.SYMTYPE)], "w")
        return "tar", "passwd"
    if case == "tar hardlink out":
        _tar(path, [good, _link("hard", "../target.txt", tarfile.LNKTYPE)], "w:gz")
        return "tar.gz", "hard"
    if case == "tar absolute hardlink":
        _tar(path, [good, _link("hard", str(outside / "target.txt"), tarfile.LNKTYPE)], "w:gz")
        return "tar.gz", "hard"
    if case == "zip ../":
        _zip(path, [("model.joblib", b"model", None), ("../evil.txt", b"evil", None)])
        return "zip", "../evil.txt"
    if case == "zip absolute":
        _zip(path, [("model.joblib", b"model", None), (str(outside / "evil.txt"), b"evil", None)])
        return "zip", str(outside / "evil.txt")
    if case == "zip symlink":
        link_mode = stat.S_IFLNK | 0o777
        _zip(path, [("model.joblib", b"model", None), ("escape", b"../../../../outside", link_mode)])
        return "zip", "escape"
    raise AssertionError(case)


HOSTILE = [
    "tar ../",
    "tar nested ../",
    "tar absolute",
    "tar symlink out",
    "tar absolute symlink",
    "tar hardlink out",
    "tar absolute hardlink",
    "zip ../",
    "zip absolute",
    "zip symlink",
]


@pytest.mark.parametrize("case", HOSTILE)
def test_an_archive_entry_that_leaves_the_folder_is_refused(store: Path, tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_bytes(b"untouched")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    kind, entry = _hostile(case, scratch / "archive", outside)
    (store / "archives").mkdir()
    (scratch / "archive").rename(store / "archives" / f"hostile.{kind}")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    uri = f"localtest://archives/hostile.{kind}"
    with pytest.raises(ModelLoadError) as raised:
        fetch(uri, settings(tmp_path))
    message = raised.value.message
    assert uri in message
    assert repr(entry) in message or f" {entry} " in message, message

    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    created = sorted(str(path) for path in after.keys() - before.keys() if not path.name.endswith(".lock"))
    assert created == []  # nothing written anywhere: not outside, not in the cache
    assert after.items() >= before.items()  # nothing changed
    assert not any(path.is_symlink() for path in tmp_path.rglob("*"))
    assert cache_entries(tmp_path) == []


# Errors.


def test_an_unknown_scheme_lists_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as raised:
        fetch("nosuch://bucket/model", settings(tmp_path))
    message = raised.value.message
    assert "nosuch://bucket/model" in message
    assert "'nosuch://'" in message
    installed = message.partition("installed: ")[2]
    for scheme in ("http", "https", "s3", "gs", "az", "hf", "pvc", "localtest", "zzz"):
        assert scheme in installed.rstrip(")").split(", "), message


def test_a_scheme_whose_library_is_missing_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as raised:
        fetch("zzz://bucket/model", settings(tmp_path))
    message = raised.value.message
    assert message.startswith("zzz://bucket/model: ")
    assert "core_zzz_not_installed" in message and "not installed" in message
    assert message.endswith(": pip install 'core[zzz]'")
    assert cache_entries(tmp_path) == []


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("nosuch://user:{s}@host/model?sig={s}", "nosuch://host/model"),
        ("zzz://user:{s}@host/model?sig={s}&se=2030", "zzz://host/model"),
        ("localtest://user:{s}@iris/not-there?sig={s}", "localtest://iris/not-there"),
        ("localwrongsize://user:{s}@iris/model.joblib?sig={s}", "localwrongsize://iris/model.joblib"),
        ("localbadmd5://user:{s}@iris/model.joblib?sig={s}", "localbadmd5://iris/model.joblib"),
        ("localtest://user:{s}@archives/hostile.tar?sig={s}", "localtest://archives/hostile.tar"),
    ],
    ids=["unknown scheme", "missing library", "no object", "wrong size", "wrong md5", "hostile archive"],
)
def test_credentials_never_appear_in_errors_or_logs(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, uri: str, shown: str
) -> None:
    write(store / "iris", IRIS)
    SIZE_OFFSET[0] = 7
    (store / "archives").mkdir()
    _tar(store / "archives" / "hostile.tar", [_file("../evil.txt", b"evil")], "w")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ModelLoadError) as raised:
        fetch(uri.format(s=SECRET), settings(tmp_path))
    message = raised.value.message
    assert shown in message
    assert SECRET not in message and "sig=" not in message and "user" not in message
    assert SECRET not in str(raised.value)
    assert not [record for record in caplog.records if SECRET in record.getMessage()]
    with contextlib.suppress(FileNotFoundError):
        for path in (tmp_path / "cache").rglob("*"):
            assert SECRET not in path.name
