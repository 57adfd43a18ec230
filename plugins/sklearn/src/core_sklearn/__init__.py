"""scikit-learn runtime for core."""

from .model import SKLearnModel
from .version import __version__

__all__ = ["SKLearnModel", "__version__"]
