"""The core registers its own codecs and storage schemes through the same
hooks as any plugin."""

from __future__ import annotations

import importlib.util
from typing import Any

from ..codecs.base64 import Base64Codec
from ..codecs.datetime import DatetimeCodec
from ..codecs.dict import DictRequestCodec
from ..codecs.json import JSONCodec
from ..codecs.numpy import NumpyCodec, NumpyRequestCodec
from ..codecs.string import StringCodec, StringRequestCodec
from .hookspecs import Storage, hookimpl


@hookimpl
def core_codecs() -> list[Any]:
    codecs: list[Any] = [
        NumpyCodec,
        NumpyRequestCodec,
        StringCodec,
        StringRequestCodec,
        Base64Codec,
        DatetimeCodec,
        JSONCodec,
        DictRequestCodec,
    ]
    if importlib.util.find_spec("pandas") is not None:  # the optional `pandas` extra
        from ..codecs.pandas import PandasCodec

        codecs.append(PandasCodec)
    return codecs


@hookimpl
def core_storage() -> list[Storage]:
    # Each opener imports its library only when a URI of its scheme is
    # fetched; a missing one is an error that says which extra adds it.
    from ..storage.azure import is_azure_blob

    return [
        Storage(("http", "https"), "core.storage.http:open_http", "HTTP(S) downloads (httpx)"),
        Storage(
            ("s3",),
            "core.storage.s3:open_s3",
            "Amazon S3 and compatible stores (s3fs)",
            "pip install 'core[s3]'",
        ),
        Storage(
            ("gs",), "core.storage.gcs:open_gcs", "Google Cloud Storage (gcsfs)", "pip install 'core[gcs]'"
        ),
        Storage(
            ("az",),
            "core.storage.azure:open_azure",
            "Azure Blob Storage, also https://ACCOUNT.blob.core.windows.net (adlfs)",
            "pip install 'core[azure]'",
            matches=is_azure_blob,
        ),
        Storage(
            ("hf",),
            "core.storage.hf:open_hf",
            "Hugging Face Hub repositories (huggingface_hub)",
            "pip install 'core[hf]'",
        ),
        Storage(("pvc",), "core.storage.pvc:open_pvc", "Kubernetes volumes mounted at storage_pvc_root"),
    ]
