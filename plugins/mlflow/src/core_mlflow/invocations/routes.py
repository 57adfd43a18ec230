"""The routes of MLflow's scoring server: `POST /invocations` (the only
MLflow model), `POST /v2/models/{name}[/versions/{version}]/invocations`
(any model, by name), `GET /ping`, `/health` and `/version`. Every error is
answered in MLflow's shape (`errors.MLflowError`), never FastAPI's 422:
bodies are read here."""

from __future__ import annotations

import functools
import importlib.metadata
import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from core.dataplane import DataPlane
from core.errors import CoreError, ModelNotFound
from core.executor import run_in_thread
from core.rest.body import read_body
from core.types import InferenceRequest, InferenceResponse

from .answers import answer
from .errors import MLflowError
from .parsing import inference_request, media_type

# How a model's settings name this plugin's runtime.
MLFLOW_IMPLEMENTATIONS = frozenset({"mlflow", "core_mlflow.MLflowModel", "core_mlflow.model.MLflowModel"})
_MLFLOW_CLASS = "core_mlflow.model.MLflowModel"
# Bodies and answers past these sizes are parsed or written in a thread: the
# event loop keeps routing other requests meanwhile.
_INLINE_BODY_BYTES = 1 << 16
_INLINE_ELEMENTS = 1 << 14
JSON_MEDIA_TYPE = "application/json"


class InvocationsRoutes:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def invocations(self, request: Request) -> Response:
        return await self._score(request, self._only_model(), None)

    async def model_invocations(self, name: str, request: Request) -> Response:
        return await self._score(request, name, None)

    async def version_invocations(self, name: str, version: str, request: Request) -> Response:
        return await self._score(request, name, version)

    async def _score(self, request: Request, name: str, version: str | None) -> Response:
        mime = media_type(request.headers.get("content-type"))
        body = await read_body(
            request.headers, request.receive, self.dataplane.settings.max_request_body_size
        )
        payload: InferenceRequest = (
            inference_request(mime, body)
            if len(body) <= _INLINE_BODY_BYTES
            else await run_in_thread(inference_request, mime, body)
        )
        response = await self.dataplane.infer(payload, name, version, request.headers)
        content = (
            answer(response)
            if _elements(response) <= _INLINE_ELEMENTS
            else await run_in_thread(answer, response)
        )
        return Response(content, media_type=JSON_MEDIA_TYPE)

    def _only_model(self) -> str:
        """The one MLflow model served: a 400 naming them when there are
        several, a 503 while none is ready, a 404 when there is none."""
        served: list[str] = []
        not_ready: list[str] = []
        others: list[str] = []
        for name in self.dataplane.model_names():
            try:
                mlflow = self._is_mlflow(name)
            except ModelNotFound:  # unloaded meanwhile
                continue
            except CoreError:  # loading, or failed: its settings are not known yet
                not_ready.append(name)
                continue
            (served if mlflow else others).append(name)
        if len(served) == 1:
            return served[0]
        route = "POST /v2/models/<name>/invocations"
        if served:
            raise MLflowError(400, f"several MLflow models are served ({', '.join(served)}): use {route}")
        if not_ready:
            raise MLflowError(503, f"no MLflow model is ready yet (not ready: {', '.join(not_ready)})")
        hint = f"; for the other models ({', '.join(others)}), use {route}" if others else ""
        raise MLflowError(404, f"no MLflow model is served here{hint}")

    def _is_mlflow(self, name: str) -> bool:
        if self.dataplane.model_settings(name).implementation in MLFLOW_IMPLEMENTATIONS:
            return True
        # A model started from a script, or a subclass: known by its class when it runs here.
        classes = type(self.dataplane.model(name)).__mro__
        return any(f"{cls.__module__}.{cls.__qualname__}" == _MLFLOW_CLASS for cls in classes)

    async def ping(self) -> Response:
        # MLflow answers 200 or 404, with a newline for a body either way.
        status = 200 if self.dataplane.ready() else 404
        return Response("\n", status_code=status, media_type=JSON_MEDIA_TYPE)

    async def version(self) -> Response:
        # The bare version string, as MLflow answers it (under a JSON media type).
        return Response(mlflow_version(), media_type=JSON_MEDIA_TYPE)


@functools.cache
def mlflow_version() -> str:
    """The installed MLflow's version, read without importing mlflow."""
    for distribution in ("mlflow-skinny", "mlflow"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise MLflowError(404, "MLflow is not installed in the server's environment")


def _elements(response: InferenceResponse) -> int:
    return sum(math.prod(output.shape) for output in response.outputs)


def _answering_errors(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    @functools.wraps(handler)
    async def answer_or_error(*args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(*args, **kwargs)
        except Exception as error:
            return MLflowError.of(error).response()

    return answer_or_error


def invocations_router(dataplane: DataPlane) -> APIRouter:
    routes = InvocationsRoutes(dataplane)
    router = APIRouter(tags=["mlflow"])
    router.add_api_route("/invocations", _answering_errors(routes.invocations), methods=["POST"])
    router.add_api_route(
        "/v2/models/{name}/invocations", _answering_errors(routes.model_invocations), methods=["POST"]
    )
    router.add_api_route(
        "/v2/models/{name}/versions/{version}/invocations",
        _answering_errors(routes.version_invocations),
        methods=["POST"],
    )
    router.add_api_route("/ping", _answering_errors(routes.ping), methods=["GET"])
    router.add_api_route("/health", _answering_errors(routes.ping), methods=["GET"])
    router.add_api_route("/version", _answering_errors(routes.version), methods=["GET"])
    return router
