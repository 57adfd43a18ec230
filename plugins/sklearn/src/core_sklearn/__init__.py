"""scikit-learn runtime for core."""

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .model import SKLearnModel

__all__ = ["SKLearnModel", "__version__"]


def __getattr__(name: str) -> Any:
    # The model imports scikit-learn: only when it is asked for, not when core
    # discovers the plugin (its entry point is the `plugin` module).
    if name == "SKLearnModel":
        from .model import SKLearnModel

        return SKLearnModel
    raise AttributeError(name)
