"""Model URIs to local paths. Local files only for now; remote schemes arrive
through the storage plugins."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelLoadError
from ..settings import ModelSettings


def get_model_uri(settings: ModelSettings, wellknown_filenames: Iterable[str] = ()) -> Path:
    """The artifact's local path: `parameters.uri` (relative to the folder of
    model-settings.json), or the first well-known file name found there."""
    uri = settings.parameters.uri
    if uri is None:
        path = settings.folder
    else:
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            raise ModelLoadError(f"model '{settings.name}': unsupported URI scheme '{parsed.scheme}'")
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
