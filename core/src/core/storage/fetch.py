"""A URI to a local path: the storage that serves its scheme, the cache,
the download, the unpacking of an archive."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..plugins.hookspecs import Storage
from ..plugins.manager import get_plugin_manager, load_import_path
from .archives import is_archive, unpack
from .cache import CONTENT, Cache, default_cache_dir
from .download import download_all
from .stores import RemoteObject, RemoteStore
from .uris import redact, scheme_of

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """Where a URI's content is, and what it took: `downloaded` bytes (0:
    from the cache, or the scheme names local files)."""

    path: Path
    scheme: str
    downloaded: int = 0
    seconds: float = 0.0
    cache_hit: bool = False


def fetch(uri: str, settings: Settings) -> Fetched:
    """The local path of `uri`'s content: a file for a single object, a
    folder for a folder of objects or an unpacked archive. ModelLoadError
    naming the URI (without credentials) when it cannot be had."""
    shown = redact(uri)
    storage = storage_for(uri)
    opened = _open(storage, uri, settings)
    scheme = scheme_of(uri) or ""
    if isinstance(opened, Path):
        if not opened.exists():
            raise ModelLoadError(f"{shown}: {opened} does not exist")
        return Fetched(opened, scheme)
    store: RemoteStore = opened
    try:
        objects, single = store.list()
    except ModelLoadError:
        raise
    except FileNotFoundError:
        raise ModelLoadError(f"{shown}: no such object, and no objects under it") from None
    except Exception as error:
        raise ModelLoadError(f"{shown}: cannot list: {_reason(error)}") from None
    fingerprint = _fingerprint(objects)
    cache = Cache(
        Path(settings.storage_cache_dir) if settings.storage_cache_dir else default_cache_dir(),
        settings.storage_cache_size,
    )
    key = cache.key(uri)
    with cache.locked(key) as entry:
        manifest = cache.manifest(entry)
        if manifest is not None and manifest.get("fingerprint") == fingerprint:
            cache.touch(entry)
            logger.info("%s: unchanged, from the cache (%s)", shown, entry)
            return Fetched(_content(entry, manifest), scheme, cache_hit=True)
        scratch = cache.scratch()
        try:
            downloaded = scratch / "download"
            try:
                progress = download_all(
                    store, objects, downloaded, settings.storage_download_workers, settings.storage_chunk_size
                )
            except ModelLoadError:
                raise
            except Exception as error:
                raise ModelLoadError(f"{shown}: download failed: {_reason(error)}") from None
            name = objects[0].name if single else None
            if name is not None and is_archive(name):
                unpack(downloaded / name, scratch / CONTENT, shown)
                shutil.rmtree(downloaded)
                # `tar czf iris.tar.gz iris/` holds one folder: that folder is the content.
                entries = list((scratch / CONTENT).iterdir())
                name = entries[0].name if len(entries) == 1 and entries[0].is_dir() else None
            else:
                downloaded.rename(scratch / CONTENT)
            manifest = {"uri": shown, "fingerprint": fingerprint, "file": name}
            cache.install(scratch, entry, manifest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    cache.evict(keep=entry)
    return Fetched(_content(entry, manifest), scheme, progress.done, progress.seconds)


def storage_for(uri: str) -> Storage:
    """The installed storage for `uri`: one that matches it, else one for
    its scheme."""
    scheme = scheme_of(uri) or ""
    storages = get_plugin_manager().storages()
    for storage in storages:
        if storage.matches is not None and storage.matches(uri):
            return storage
    for storage in storages:
        if scheme in storage.schemes:
            return storage
    known = sorted({name for storage in storages for name in storage.schemes})
    raise ModelLoadError(
        f"{redact(uri)}: no installed storage serves '{scheme}://' URIs (installed: {', '.join(known)})"
    )


def _open(storage: Storage, uri: str, settings: Settings) -> RemoteStore | Path:
    try:
        opener = load_import_path(storage.open)
        opened: RemoteStore | Path = opener(uri, settings)
    except ImportError as error:
        hint = f": {storage.install}" if storage.install else ""
        raise ModelLoadError(f"{redact(uri)}: {error.name or error} is not installed{hint}") from None
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(f"{redact(uri)}: {_reason(error)}") from None
    return opened


def _fingerprint(objects: list[RemoteObject]) -> str:
    described = [[item.name, item.size, item.etag, item.version, (item.md5 or b"").hex()] for item in objects]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def _content(entry: Path, manifest: dict[str, Any]) -> Path:
    content = entry / CONTENT
    return content / manifest["file"] if manifest.get("file") else content


def _reason(error: BaseException) -> str:
    """An error's text for a message: its type and first line (a botocore
    error's text names the operation, never the credentials)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
