"""Downloads a store's objects into a folder: several objects at once, a
large object in parallel byte ranges, each checked for its size and, where
the store gives one, its MD5. Progress is logged: size, rate, time."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..errors import ModelLoadError
from .stores import RemoteObject, RemoteStore

logger = logging.getLogger(__name__)

# Progress lines at most this often (seconds).
_PROGRESS_EVERY = 5.0


class Progress:
    def __init__(self, uri: str, total: int) -> None:
        self.uri = uri
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self._logged = self.started
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._logged >= _PROGRESS_EVERY:
                self._logged = now
                logger.info("%s: %s of %s (%s)", self.uri, _size(self.done), _size(self.total), self.rate())

    def rate(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-6)
        return f"{_size(int(self.done / seconds))}/s"

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def download_all(
    store: RemoteStore, objects: list[RemoteObject], folder: Path, workers: int, chunk_size: int
) -> Progress:
    """Every object into `folder` (at its `name`); raises ModelLoadError
    for an object that cannot be fetched or does not check out."""
    total = sum(item.size or 0 for item in objects)
    progress = Progress(store.uri, total)
    logger.info("%s: downloading %d object(s), %s", store.uri, len(objects), _size(total))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="core-storage") as pool:
        jobs: list[Future[None]] = []
        # Objects read in byte ranges, each range a request of its own.
        ranged: list[RemoteObject] = []
        for item in objects:
            path = _target(folder, item.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            size = item.size
            if store.ranges and size is not None and size > chunk_size:
                ranged.append(item)
                with open(path, "wb") as file:
                    file.truncate(size)
                ranges = [(start, min(start + chunk_size, size)) for start in range(0, size, chunk_size)]
                jobs.extend(
                    pool.submit(_fetch_range, store, item, path, start, end, progress)
                    for start, end in ranges
                )
            else:
                jobs.append(pool.submit(_fetch_whole, store, item, path, progress))
        for job in jobs:
            job.result()  # the first failure, once every job has ended
    for item in objects:
        _check(store.uri, item, _target(folder, item.name))
        if item in ranged and not store.unchanged(item):
            raise ModelLoadError(f"{store.uri}: {item.name} changed during the download: load it again")
    logger.info(
        "%s: downloaded %s in %.1f s (%s)", store.uri, _size(progress.done), progress.seconds, progress.rate()
    )
    return progress


def _fetch_range(
    store: RemoteStore, item: RemoteObject, path: Path, start: int, end: int, progress: Progress
) -> None:
    data = store.read(item, start, end)
    if len(data) != end - start:
        raise ModelLoadError(
            f"{store.uri}: {item.name}: bytes {start}-{end} came back as {len(data)} bytes (interrupted?)"
        )
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(descriptor, data, start)
    finally:
        os.close(descriptor)
    progress.add(len(data))


def _fetch_whole(store: RemoteStore, item: RemoteObject, path: Path, progress: Progress) -> None:
    store.download(item, path)
    progress.add(path.stat().st_size)


def _check(uri: str, item: RemoteObject, path: Path) -> None:
    size = path.stat().st_size
    if item.size is not None and size != item.size:
        raise ModelLoadError(
            f"{uri}: {item.name}: {size} bytes downloaded, the store says {item.size} (interrupted?)"
        )
    if item.md5 is not None:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as file:
            while block := file.read(1 << 20):
                digest.update(block)
        if digest.digest() != item.md5:
            raise ModelLoadError(f"{uri}: {item.name}: its MD5 is not the one the store gives: corrupted")


def _target(folder: Path, name: str) -> Path:
    """`folder / name`, refusing a name that would leave the folder (an
    object key with `..`)."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()) or path == folder.resolve():
        raise ModelLoadError(f"object name {name!r} leaves the download folder")
    return path


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
