"""core: a small, fast, plugin-based Open Inference Protocol model server."""

from .codecs import decode_args
from .errors import BadRequest, CoreError
from .executor import run_in_thread
from .model import Model
from .settings import ModelParameters, ModelSettings, Settings
from .version import __version__

__all__ = [
    "BadRequest",
    "CoreError",
    "Model",
    "ModelParameters",
    "ModelSettings",
    "Server",
    "Settings",
    "__version__",
    "decode_args",
    "log",
    "record",
    "register",
    "run_in_thread",
]


def __getattr__(name: str) -> object:
    # The server pulls in FastAPI and uvicorn, metrics prometheus_client:
    # import them only when asked, so client code using `core.codecs` or
    # `core.types` stays light.
    if name == "Server":
        from .server import Server

        return Server
    if name in ("register", "log", "record"):
        from . import metrics

        return getattr(metrics, name)
    raise AttributeError(name)
