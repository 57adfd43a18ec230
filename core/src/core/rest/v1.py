"""KServe's V1 protocol: `/v1/models`, readiness, `:predict` and `:explain`.
The requests go through the same `DataPlane.infer` as OIP ones, so every
runtime answers V1 without code of its own (see `core.v1`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request

from ..dataplane import DataPlane
from ..types import InferenceErrorResponse, InferenceRequest, InferenceResponse
from ..v1 import (
    DEFAULT_INPUT_NAME,
    V1ExplainResponse,
    V1ModelsResponse,
    V1PredictResponse,
    V1Request,
    v1_predictions,
    v1_request,
)
from .body import parse_json, read_body
from .dataplane_routes import ERROR_RESPONSES, model_ready_response
from .responses import JSONResponse

# The body is parsed by hand (errors stay 400s of ours); this tells the
# OpenAPI document what it looks like.
_V1_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": V1Request.model_json_schema()}},
    }
}

Call = Callable[[InferenceRequest, str, str | None, Mapping[str, str] | None], Awaitable[InferenceResponse]]


def v1_router(dataplane: DataPlane, max_body_size: int) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES, tags=["v1"])

    async def list_models() -> JSONResponse:
        return JSONResponse({"models": dataplane.model_names()})

    async def model_ready(name: str) -> JSONResponse:
        return model_ready_response(dataplane, name)

    async def run(request: Request, name: str, call: Call) -> list[Any]:
        content = parse_json(await read_body(request.headers, request.receive, max_body_size))
        inputs = dataplane.model(name).inputs
        # A model that declares a single input gets the instances under its name.
        input_name = inputs[0].name if len(inputs) == 1 else DEFAULT_INPUT_NAME
        response = await call(v1_request(content, input_name), name, None, request.headers)
        return v1_predictions(response)

    async def predict(request: Request, name: str) -> JSONResponse:
        return JSONResponse({"predictions": await run(request, name, dataplane.infer)})

    async def explain(request: Request, name: str) -> JSONResponse:
        return JSONResponse({"explanations": await run(request, name, dataplane.explain)})

    router.add_api_route("/v1/models", list_models, methods=["GET"], response_model=V1ModelsResponse)
    # Starlette matches `{name}` as `[^/]+` and backtracks, so `iris:predict`
    # reaches `:predict` with name `iris`, and the GET route never sees POSTs.
    router.add_api_route("/v1/models/{name}", model_ready, methods=["GET"])
    router.add_api_route(
        "/v1/models/{name}:predict",
        predict,
        methods=["POST"],
        response_model=V1PredictResponse,
        openapi_extra=_V1_BODY,
    )
    router.add_api_route(
        "/v1/models/{name}:explain",
        explain,
        methods=["POST"],
        response_model=V1ExplainResponse,
        responses={501: {"model": InferenceErrorResponse}},
        openapi_extra=_V1_BODY,
    )
    return router
