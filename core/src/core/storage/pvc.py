"""`pvc://NAME/PATH`: a Kubernetes persistent volume claim, mounted at
`storage_pvc_root` (default /mnt/pvc, as KServe mounts it): PATH there."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelLoadError

if TYPE_CHECKING:
    from ..settings import Settings


def open_pvc(uri: str, settings: Settings) -> Path:
    _, _, path = uri[len("pvc://") :].partition("/")
    root = Path(settings.storage_pvc_root)
    local = (root / path).resolve()
    if not local.is_relative_to(root.resolve()):
        raise ModelLoadError(f"{uri}: the path leaves the volume's mount point {root}")
    return local
