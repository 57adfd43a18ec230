"""LightGBM runtime for core."""

from .model import LightGBMModel
from .version import __version__

__all__ = ["LightGBMModel", "__version__"]
