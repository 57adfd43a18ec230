"""Model URIs to local paths: local files as they are; remote URIs (s3://,
gs://, Azure Blob, http(s)://, hf://, pvc://, and any scheme a plugin adds
through the `core_storage` hook) fetched into a cache first (`fetch`).
See docs/storage.md."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelLoadError
from ..settings import ModelSettings, Settings
from .fetch import Fetched, fetch, storage_for
from .stores import FsspecStore, RemoteObject, RemoteStore
from .uris import is_remote, redact

__all__ = [
    "Fetched",
    "FsspecStore",
    "RemoteObject",
    "RemoteStore",
    "fetch",
    "get_model_uri",
    "is_remote",
    "localise",
    "redact",
    "storage_for",
]


async def localise(settings: ModelSettings, server: Settings) -> tuple[ModelSettings, Fetched | None]:
    """`settings` with a remote `parameters.uri` fetched (in a thread) and
    replaced by its local path; unchanged settings for a local one."""
    uri = settings.parameters.uri
    if uri is None or not is_remote(uri):
        return settings, None
    # The loop's default executor, not core.run_in_thread's pool: a download
    # may take minutes, and that pool runs the models' calls.
    fetched = await asyncio.to_thread(fetch, uri, server)
    local = settings.model_copy(deep=True)
    local.parameters.uri = str(fetched.path)
    return local, fetched


def get_model_uri(settings: ModelSettings, wellknown_filenames: Iterable[str] = ()) -> Path:
    """The artifact's local path: `parameters.uri` (relative to the folder of
    model-settings.json), or the first well-known file name found there."""
    uri = settings.parameters.uri
    if uri is None:
        path = settings.folder
    else:
        if is_remote(uri):
            raise ModelLoadError(f"model '{settings.name}': {redact(uri)} was not fetched")
        parsed = urlparse(uri)
        path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser()
        if not path.is_absolute():
            path = settings.folder / path
    if path.is_dir():
        names = list(wellknown_filenames)
        found = next((path / name for name in names if (path / name).is_file()), None)
        if found is None:
            raise ModelLoadError(
                f"model '{settings.name}': no artifact in {path} (looked for {', '.join(names)})"
            )
        return found
    if not path.exists():
        raise ModelLoadError(f"model '{settings.name}': artifact {path} does not exist")
    return path
