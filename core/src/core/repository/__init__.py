"""The model repository: models found on disk and how to build them."""

from .artifacts import pickled_class, read_head
from .finder import FoundModel, find_models
from .implementation import resolve_implementation

__all__ = ["FoundModel", "find_models", "pickled_class", "read_head", "resolve_implementation"]
