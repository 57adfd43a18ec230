"""The download cache: one folder per URI under `storage_cache_dir`, with
the fingerprint (sizes, ETags, versions) of what was downloaded. A URI whose
objects have not changed is served from it without a download; a changed
one is downloaded again, next to the old copy, and swapped in. Past
`storage_cache_size` bytes, the least recently used entries are evicted.
A lock per entry keeps two processes from downloading one URI at once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CONTENT = "content"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "core" / "storage"


class Cache:
    def __init__(self, folder: Path, size_limit: int | None) -> None:
        self.folder = folder
        self.size_limit = size_limit

    def key(self, uri: str) -> str:
        return hashlib.sha256(uri.encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[Path]:
        """The entry's folder, with its lock held."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{key}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.folder / key
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def manifest(self, entry: Path) -> dict[str, Any] | None:
        try:
            value = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) and (entry / CONTENT).exists() else None

    def touch(self, entry: Path) -> None:
        """Mark the entry used now (the eviction order)."""
        with contextlib.suppress(OSError):
            os.utime(entry / MANIFEST)

    def scratch(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".download-", dir=self.folder))

    def install(self, scratch: Path, entry: Path, manifest: dict[str, Any]) -> None:
        """Make the downloaded `scratch` folder the entry, atomically: the
        old entry (if any) is renamed away first, then removed."""
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1))
        old = None
        if entry.exists():
            old = self.folder / f".old-{entry.name}-{os.getpid()}"
            os.rename(entry, old)
        os.rename(scratch, entry)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def evict(self, keep: Path) -> None:
        """Remove the least recently used entries until the cache holds at
        most `size_limit` bytes; never `keep`, nor an entry being written."""
        if self.size_limit is None:
            return
        entries = []
        for entry in self.folder.iterdir():
            if entry.is_dir() and not entry.name.startswith(".") and (entry / MANIFEST).exists():
                entries.append(((entry / MANIFEST).stat().st_mtime, entry, _bytes(entry)))
        total = sum(size for _, _, size in entries)
        for _, entry, size in sorted(entries):
            if total <= self.size_limit:
                break
            if entry == keep:
                continue
            with open(self.folder / f"{entry.name}.lock", "a+b") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use
                try:
                    shutil.rmtree(entry, ignore_errors=True)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            logger.info("storage cache: evicted %s (%d bytes)", entry.name, size)
            total -= size


def _bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
