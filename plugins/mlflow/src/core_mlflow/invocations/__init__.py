"""MLflow's scoring protocol (`mlflow models serve`): `/invocations`,
`/ping`, `/health` and `/version`, each call translated to V2 and sent
through the dataplane, so existing MLflow callers switch by changing the
URL. Imports neither mlflow nor the model: the server process may host no
model at all (worker processes do)."""

from .routes import invocations_router

__all__ = ["invocations_router"]
