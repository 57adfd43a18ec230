"""XGBoost runtime for core."""

from .model import XGBoostModel
from .version import __version__

__all__ = ["XGBoostModel", "__version__"]
