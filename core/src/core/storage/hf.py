"""`hf://ORG/MODEL[@REVISION]` (or KServe's `hf://ORG/MODEL:REVISION`): a
Hugging Face Hub repository, fetched with huggingface_hub's
`snapshot_download` (`core[hf]`) into the hub's own cache,
which is what makes a second fetch free. HF_TOKEN, HF_HOME and
HF_HUB_OFFLINE (the cache only) apply as huggingface_hub reads them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelLoadError

if TYPE_CHECKING:
    from ..settings import Settings


def open_hf(uri: str, settings: Settings) -> Path:
    from huggingface_hub import snapshot_download

    repository, _, revision = uri[len("hf://") :].partition("@")
    if not revision and ":" in repository:  # KServe's form, hf://ORG/MODEL:REVISION
        repository, _, revision = repository.partition(":")
    if repository.count("/") > 1 or not repository.strip("/"):
        raise ModelLoadError(f"{uri}: expected hf://ORG/MODEL or hf://ORG/MODEL@REVISION")
    try:
        return Path(snapshot_download(repo_id=repository.strip("/"), revision=revision or None))
    except Exception as error:  # offline without the files, unknown repository or revision
        raise ModelLoadError(f"{uri}: {type(error).__name__}: {str(error).splitlines()[0]}") from None
