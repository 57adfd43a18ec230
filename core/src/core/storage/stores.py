"""What a storage scheme gives the downloader: the objects a URI names, and
their bytes. `FsspecStore` serves every fsspec filesystem (s3fs, gcsfs,
adlfs); `core.storage.http` serves http(s) with httpx."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ModelLoadError


@dataclass(frozen=True)
class RemoteObject:
    """One object to download. `name`: its path in the downloaded folder
    (relative; a single object's own file name). `md5`: the digest the store
    vouches for, checked after the download; `etag`/`version`: what says the
    object changed (the cache key)."""

    key: str
    name: str
    size: int | None
    etag: str | None = None
    version: str | None = None
    md5: bytes | None = None


class RemoteStore(Protocol):
    # The URI as it may be shown (no credentials).
    uri: str
    # Whether `read` takes byte ranges (large objects are then fetched in
    # parallel chunks).
    ranges: bool

    def list(self) -> tuple[list[RemoteObject], bool]:
        """The objects the URI names, and whether it names one object (not
        a folder). A folder's objects are those under `uri + "/"`, never a
        sibling that only starts with the same letters. No object: a
        ModelLoadError naming the URI."""

    def read(self, item: RemoteObject, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (exclusive) of the object."""

    def download(self, item: RemoteObject, path: Path) -> None:
        """The whole object into the file `path`."""

    def unchanged(self, item: RemoteObject) -> bool:
        """Whether the object is still the one listed (same ETag, version
        and size): asked after its byte ranges are read, since each range
        is a request of its own and the object may be replaced meanwhile."""


Checksum = Callable[[dict[str, Any]], bytes | None]

# Where fsspec filesystems put an object's modification time.
_MODIFIED = ("mtime", "LastModified", "last_modified", "updated", "modified")


class FsspecStore:
    """The objects at `path` of an fsspec filesystem: the file itself, or
    every file below the folder `path`."""

    ranges = True

    def __init__(self, fs: Any, path: str, uri: str, md5: Checksum | None = None) -> None:
        self.fs = fs
        self.path = path.rstrip("/")
        self.uri = uri
        self._md5 = md5 or (lambda info: None)

    def list(self) -> tuple[list[RemoteObject], bool]:
        try:
            info = self.fs.info(self.path)
        except FileNotFoundError:
            info = None
        if info is not None and info.get("type") == "file":
            return [self._object(info, Path(self.path).name)], True
        prefix = self.path + "/"
        found = self.fs.find(prefix, detail=True, withdirs=False)
        objects = [
            self._object(item, key[len(prefix) :])
            for key, item in sorted(found.items())
            if key.startswith(prefix) and item.get("type") == "file" and not key.endswith("/")
        ]
        if not objects:
            raise ModelLoadError(f"{self.uri}: no such object, and no objects under it")
        return objects, False

    def read(self, item: RemoteObject, start: int, end: int) -> bytes:
        data: bytes = self.fs.cat_file(item.key, start=start, end=end)
        return data

    def download(self, item: RemoteObject, path: Path) -> None:
        self.fs.get_file(item.key, str(path))

    def unchanged(self, item: RemoteObject) -> bool:
        now = self._object(self.fs.info(item.key), item.name)
        return (now.etag, now.version, now.size) == (item.etag, item.version, item.size)

    def _object(self, info: dict[str, Any], name: str) -> RemoteObject:
        etag = info.get("ETag") or info.get("etag")
        version = info.get("VersionId") or info.get("generation") or info.get("version_id")
        if not (etag or version):  # a filesystem with neither (local, sftp): its modification time
            version = next((info[key] for key in _MODIFIED if info.get(key)), None)
        return RemoteObject(
            key=str(info["name"]),
            name=name,
            size=int(info["size"]) if info.get("size") is not None else None,
            etag=str(etag).strip('"') if etag else None,
            version=str(version) if version else None,
            md5=self._md5(info),
        )


def md5_of_base64(value: Any) -> bytes | None:
    """GCS' md5Hash, Azure's Content-MD5: a base64 digest (or its bytes)."""
    if not value:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) if len(value) == 16 else None
    try:
        digest = base64.b64decode(str(value))
    except ValueError:
        return None
    return digest if len(digest) == 16 else None
