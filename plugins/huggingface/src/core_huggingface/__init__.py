"""Hugging Face transformers runtime for core: pipelines over V2, token
streaming, and OpenAI-compatible endpoints."""

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .model import HuggingFaceModel

__all__ = ["HuggingFaceModel", "__version__"]


def __getattr__(name: str) -> Any:
    # The model imports torch and transformers: only when it is asked for, so
    # that the plugin's codecs and routes load without them.
    if name == "HuggingFaceModel":
        from .model import HuggingFaceModel

        return HuggingFaceModel
    raise AttributeError(name)
