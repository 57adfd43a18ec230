"""MLflow pyfunc runtime for core: signature-typed metadata, params, and
MLflow's /invocations scoring protocol."""

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .model import MLflowModel

__all__ = ["MLflowModel", "__version__"]


def __getattr__(name: str) -> Any:
    # The model imports mlflow: only when it is asked for.
    if name == "MLflowModel":
        from .model import MLflowModel

        return MLflowModel
    raise AttributeError(name)
