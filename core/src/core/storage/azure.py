"""Azure Blob Storage, `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH`
(KServe's form) or `az://CONTAINER/PATH`, with adlfs (`core[azure]`).
Credentials as KServe reads them: AZURE_STORAGE_CONNECTION_STRING, or
AZURE_STORAGE_ACCESS_KEY, or a service principal (AZURE_CLIENT_ID,
AZURE_TENANT_ID, AZURE_CLIENT_SECRET), or a SAS token in the URL's query,
or a managed/workload identity (AZURE_CLIENT_ID alone, or
AZURE_FEDERATED_TOKEN_FILE); with none, anonymous (a public container).
`az://` takes the account from AZURE_STORAGE_ACCOUNT_NAME."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..errors import ModelLoadError
from .stores import FsspecStore, md5_of_base64
from .uris import redact

if TYPE_CHECKING:
    from ..settings import Settings

BLOB_HOST = ".blob.core.windows.net"


def is_azure_blob(uri: str) -> bool:
    host = urlsplit(uri).hostname or ""
    return uri.lower().startswith("https://") and host.endswith(BLOB_HOST)


def open_azure(uri: str, settings: Settings) -> FsspecStore:
    import adlfs

    parts = urlsplit(uri)
    if parts.scheme == "az":
        account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
        path = f"{parts.netloc}{unquote(parts.path)}"
    else:
        account = (parts.hostname or "").split(".")[0]
        path = unquote(parts.path).lstrip("/")
    options: dict[str, Any] = {"account_name": account}
    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    key = os.environ.get("AZURE_STORAGE_ACCESS_KEY") or os.environ.get("AZURE_STORAGE_KEY")
    principal = [
        os.environ.get(name) for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")
    ]
    if connection:
        named = _connection_account(connection)
        if parts.scheme != "az" and named and named != account:
            raise ModelLoadError(
                f"{redact(uri)}: AZURE_STORAGE_CONNECTION_STRING is for account '{named}', not '{account}'"
            )
        options = {"connection_string": connection}
    elif parts.query:  # a SAS token in the URL
        options["sas_token"] = parts.query
    elif key:
        options["account_key"] = key
    elif all(principal):
        options.update(client_id=principal[0], tenant_id=principal[1], client_secret=principal[2])
    elif principal[0] or os.environ.get("AZURE_FEDERATED_TOKEN_FILE"):
        options["anon"] = False  # a managed or workload identity: azure-identity's default credential
    else:
        options["anon"] = True
    fs = adlfs.AzureBlobFileSystem(**options, skip_instance_cache=True)
    return FsspecStore(fs, path, redact(uri), _md5)


def _connection_account(connection: str) -> str | None:
    fields = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
    return fields.get("AccountName")


def _md5(info: dict[str, Any]) -> bytes | None:
    settings = info.get("content_settings") or {}
    value = (
        settings.get("content_md5") if isinstance(settings, dict) else getattr(settings, "content_md5", None)
    )
    return md5_of_base64(value)
