"""http(s) URIs, with httpx: one object (an artifact, or an archive of a
model folder). Whatever the Content-Type; byte ranges when the server
offers them; per-host headers from `storage_http_headers`."""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from ..errors import ModelLoadError
from .stores import RemoteObject, md5_of_base64
from .uris import redact

if TYPE_CHECKING:
    from ..settings import Settings

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# httpx logs every request's URL at INFO: a URL may carry a token.
logging.getLogger("httpx").setLevel(logging.WARNING)


class HttpStore:
    def __init__(self, url: str, headers: dict[str, str], verify: bool = True) -> None:
        self.url = url
        self.uri = redact(url)
        self.ranges = False
        # The bytes as stored: a .tar.gz sent with Content-Encoding: gzip is
        # still the .tar.gz, of the size the server announced.
        host = urlsplit(url).hostname

        def own_host_only(request: httpx.Request) -> None:
            # A redirect to another host does not take the host's headers
            # (httpx drops only Authorization).
            if request.url.host != host:
                for name in headers:
                    request.headers.pop(name, None)

        self._client = httpx.Client(
            headers={"Accept-Encoding": "identity", **headers},
            timeout=_TIMEOUT,
            follow_redirects=True,
            verify=verify,
            event_hooks={"request": [own_host_only]},
        )

    def list(self) -> tuple[list[RemoteObject], bool]:
        response = self._client.head(self.url)
        if response.status_code >= 400 and response.status_code != 404:
            # No HEAD (405), or a URL signed for GET only (403): the first byte says as much.
            with self._client.stream("GET", self.url, headers={"Range": "bytes=0-0"}) as response:
                pass
        if response.status_code == 404:
            raise ModelLoadError(f"{self.uri}: not found (HTTP 404)")
        if response.status_code >= 400:
            raise ModelLoadError(f"{self.uri}: HTTP {response.status_code}")
        headers = response.headers
        size = _size(response)
        self.ranges = headers.get("accept-ranges", "").lower() == "bytes" or response.status_code == 206
        # The name asked for, not a redirect target's (a CDN's hash).
        name = (
            posixpath.basename(urlsplit(self.url).path) or posixpath.basename(response.url.path) or "download"
        )
        item = RemoteObject(
            key=self.url,
            name=name,
            size=size,
            etag=headers.get("etag") or headers.get("last-modified"),
            md5=md5_of_base64(headers.get("content-md5")),
        )
        return [item], True

    def read(self, item: RemoteObject, start: int, end: int) -> bytes:
        with self._client.stream("GET", item.key, headers={"Range": f"bytes={start}-{end - 1}"}) as response:
            if response.status_code != 206:
                raise ModelLoadError(
                    f"{self.uri}: the server did not answer a byte range (HTTP {response.status_code})"
                )
            return b"".join(response.iter_raw())

    def unchanged(self, item: RemoteObject) -> bool:
        (now,), _ = self.list()
        return (now.etag, now.size) == (item.etag, item.size)

    def download(self, item: RemoteObject, path: Path) -> None:
        with self._client.stream("GET", item.key) as response, open(path, "wb") as file:
            if response.status_code >= 400:
                raise ModelLoadError(f"{self.uri}: HTTP {response.status_code}")
            for chunk in response.iter_raw(1 << 20):
                file.write(chunk)


def _size(response: httpx.Response) -> int | None:
    if response.status_code == 206:  # Content-Range: bytes 0-0/SIZE
        total = response.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def open_http(uri: str, settings: Settings) -> HttpStore:
    host = urlsplit(uri).hostname or ""
    headers = dict(settings.storage_http_headers.get(host, {}))
    return HttpStore(uri, headers)
