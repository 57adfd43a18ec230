"""core-ray: serve a core model repository on Ray Serve (`core start FOLDER --on ray`)."""

from .model import RayModel
from .options import RayOptions, ray_options
from .version import __version__

__all__ = ["RayModel", "RayOptions", "__version__", "ray_options"]
