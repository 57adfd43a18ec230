"""`gs://bucket/key` with gcsfs (`core[gcs]`): GOOGLE_APPLICATION_CREDENTIALS
(a service account's key file), else the machine's default credentials,
else anonymous; STORAGE_EMULATOR_HOST points it at an emulator."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .stores import FsspecStore, md5_of_base64
from .uris import redact

if TYPE_CHECKING:
    from ..settings import Settings


def open_gcs(uri: str, settings: Settings) -> FsspecStore:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        # gcsfs (2026.10) otherwise tries the zonal/HNS API first, which an
        # emulator lacks: about 60 s per call. Read when gcsfs is imported.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    parts = urlsplit(uri)
    token: Any = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if token is None and os.environ.get("STORAGE_EMULATOR_HOST"):
        token = "anon"  # an emulator takes no credentials
    fs = gcsfs.GCSFileSystem(token=token, skip_instance_cache=True, use_listings_cache=False)
    return FsspecStore(
        fs, f"{parts.netloc}{parts.path}", redact(uri), lambda info: md5_of_base64(info.get("md5Hash"))
    )
