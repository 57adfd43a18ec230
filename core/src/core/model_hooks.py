"""A model's KServe-style hooks, `preprocess` and `postprocess`, as the
dataplane calls them around `predict`, `explain` and `predict_stream` (for
the models whose class overrides them: see `Model.runs_preprocess`)."""

from __future__ import annotations

import inspect
import logging

from .errors import CoreError, InferenceError
from .model import Model
from .types import InferenceRequest, InferenceResponse, Parameters

logger = logging.getLogger(__name__)


class HookTimes:
    """The steps of one successful call of a model with `preprocess` or
    `postprocess` hooks, in seconds, for `DataPlane._hooks_timed`:
    `predict` is the model call (`explain` for an explanation; for a stream,
    the stream's time less the hooks'), `postprocess` a stream's hooks
    added up. `predict_started` and `predict_ended` (perf_counter) bound
    the model call of a unary call (0.0 for a stream)."""

    __slots__ = ("postprocess", "predict", "predict_ended", "predict_started", "preprocess")

    def __init__(self) -> None:
        self.preprocess = self.predict = self.postprocess = 0.0
        self.predict_started = self.predict_ended = 0.0


def hook_headers(payload: InferenceRequest) -> dict[str, str]:
    """The headers a model's hooks get: the transport's, as `_prepare` put
    them in the request (in a worker: as the server process did)."""
    parameters = payload.parameters
    return dict(parameters.headers) if parameters is not None and parameters.headers else {}


async def preprocess(model: Model, payload: InferenceRequest, headers: dict[str, str]) -> InferenceRequest:
    """`model.preprocess`'s request. A new one gets the original's id (when
    it has none) and headers, as `predict` gets them without the hook."""
    try:
        result: object = model.preprocess(payload, headers)
        if inspect.isawaitable(result):  # KServe lets hooks be plain functions too
            result = await result
    except CoreError:
        raise
    except Exception as error:
        raise _hook_failed(model, "preprocess", error) from None
    if not isinstance(result, InferenceRequest):
        raise InferenceError(
            f"model '{model.name}' failed: preprocess returned {type(result).__name__}, "
            "not an InferenceRequest"
        )
    if result is not payload:
        if result.id is None:
            result.id = payload.id
        if headers and (result.parameters is None or result.parameters.headers is None):
            if result.parameters is None:
                result.parameters = Parameters(headers=dict(headers))
            else:
                result.parameters.headers = dict(headers)
    return result


async def postprocess(
    model: Model, response: InferenceResponse, headers: dict[str, str]
) -> InferenceResponse:
    try:
        result: object = model.postprocess(response, headers)
        if inspect.isawaitable(result):
            result = await result
    except CoreError:
        raise
    except Exception as error:
        raise _hook_failed(model, "postprocess", error) from None
    if not isinstance(result, InferenceResponse):
        raise InferenceError(
            f"model '{model.name}' failed: postprocess returned {type(result).__name__}, "
            "not an InferenceResponse"
        )
    return result


def _hook_failed(model: Model, hook: str, error: Exception) -> InferenceError:
    logger.error("model '%s' raised in %s", model.name, hook, exc_info=error)
    return InferenceError(f"model '{model.name}' failed in {hook}: {type(error).__name__}: {error}")
