"""alibi-detect runtime for core: drift and outlier detectors served as
models, their results as typed tensors and Prometheus metrics."""

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .model import AlibiDetectModel
    from .serialisation import load_detector, save_detector

__all__ = ["AlibiDetectModel", "__version__", "load_detector", "save_detector"]


def __getattr__(name: str) -> Any:
    # These import alibi-detect: only when asked for.
    if name == "AlibiDetectModel":
        from .model import AlibiDetectModel

        return AlibiDetectModel
    if name in ("load_detector", "save_detector"):
        from . import serialisation

        return getattr(serialisation, name)
    raise AttributeError(name)
