"""URIs: which are remote, and how one is shown without credentials."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# A Windows drive ("C:\...") is not a scheme.
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def scheme_of(uri: str) -> str | None:
    found = _SCHEME.match(uri)
    return found.group(1).lower() if found else None


def is_remote(uri: str) -> bool:
    """A URI for a storage scheme (anything but a local path or file://)."""
    scheme = scheme_of(uri)
    return scheme is not None and scheme != "file"


def redact(uri: str) -> str:
    """The URI without user, password or query (a SAS token's signature):
    what logs, errors and metrics may show."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
