"""XGBoost runtime for core."""

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .model import XGBoostModel

__all__ = ["XGBoostModel", "__version__"]


def __getattr__(name: str) -> Any:
    # The model imports XGBoost: only when it is asked for, not when core
    # discovers the plugin (its entry point is the `plugin` module).
    if name == "XGBoostModel":
        from .model import XGBoostModel

        return XGBoostModel
    raise AttributeError(name)
