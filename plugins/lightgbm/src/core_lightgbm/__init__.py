"""LightGBM runtime for core."""

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .model import LightGBMModel

__all__ = ["LightGBMModel", "__version__"]


def __getattr__(name: str) -> Any:
    # The model imports LightGBM: only when it is asked for, not when core
    # discovers the plugin (its entry point is the `plugin` module).
    if name == "LightGBMModel":
        from .model import LightGBMModel

        return LightGBMModel
    raise AttributeError(name)
