"""The model repository: models found on disk and how to build them."""

from .finder import FoundModel, find_models
from .implementation import resolve_implementation

__all__ = ["FoundModel", "find_models", "resolve_implementation"]
