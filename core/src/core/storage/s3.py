"""`s3://bucket/key` with s3fs (`core[s3]`), configured by KServe's
environment variables: AWS_ENDPOINT_URL or S3_ENDPOINT (host[:port], with
S3_USE_HTTPS), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
AWS_SESSION_TOKEN, S3_VERIFY_SSL (or AWS_CA_BUNDLE), and
awsAnonymousCredential=true for public buckets."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .stores import FsspecStore
from .uris import redact

if TYPE_CHECKING:
    from ..settings import Settings


def open_s3(uri: str, settings: Settings) -> FsspecStore:
    import s3fs

    parts = urlsplit(uri)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT")
    if endpoint and "://" not in endpoint:
        secure = os.environ.get("S3_USE_HTTPS", "1").lower() not in ("0", "false")
        endpoint = f"{'https' if secure else 'http'}://{endpoint}"
    client: dict[str, object] = {}
    if not _true("S3_VERIFY_SSL", default=True):
        client["verify"] = False
    elif os.environ.get("AWS_CA_BUNDLE"):
        client["verify"] = os.environ["AWS_CA_BUNDLE"]
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        client["region_name"] = region
    fs = s3fs.S3FileSystem(
        anon=_true("awsAnonymousCredential", default=False),
        key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        token=os.environ.get("AWS_SESSION_TOKEN"),
        endpoint_url=endpoint,
        client_kwargs=client,
        # Each fetch lists afresh: a changed object must be seen as changed.
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    # No MD5 check from the ETag: it is an object's MD5 only for a one-part
    # upload stored unencrypted or with SSE-S3, and a listing does not say
    # which (SSE-KMS ETags are not). Sizes are checked; ETags key the cache.
    return FsspecStore(fs, f"{parts.netloc}{parts.path}", redact(uri))


def _true(variable: str, default: bool) -> bool:
    value = os.environ.get(variable)
    return default if not value else value.lower() not in ("0", "false", "no")
