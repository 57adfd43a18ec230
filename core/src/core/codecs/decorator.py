"""`decode_args`: the simplified runtime interface. A `predict` written as
`async def predict(self, questions: list[str]) -> np.ndarray` receives each
input decoded by the codec of its type hint, and its return value is encoded
into a response by the codec of the return type."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, get_args, get_origin, get_type_hints

from ..errors import BadRequest, CodecError
from ..types import InferenceRequest, InferenceResponse, ResponseOutput
from .base import InputCodec, content_type_of
from .registry import find_input_codec, find_request_codec, input_codec_for

Predict = Callable[..., Awaitable[Any]]


def decode_args(predict: Predict) -> Callable[[Any, InferenceRequest], Awaitable[InferenceResponse]]:
    hints = get_type_hints(predict)
    parameters = [p for p in inspect.signature(predict).parameters.values() if p.name != "self"]
    names = [p.name for p in parameters]
    return_hint = hints.get("return")

    @functools.wraps(predict)
    async def wrapper(self: Any, payload: InferenceRequest) -> InferenceResponse:
        tensors = {tensor.name: tensor for tensor in payload.inputs}
        unknown = sorted(set(tensors) - set(names))
        if unknown:
            raise BadRequest(f"unknown inputs {unknown}; the model takes {names}")
        arguments: dict[str, Any] = {}
        for parameter in parameters:
            tensor = tensors.get(parameter.name)
            if tensor is None:
                if parameter.default is inspect.Parameter.empty:
                    raise BadRequest(f"input '{parameter.name}' is missing; the model takes {names}")
                continue
            content_type = content_type_of(tensor)
            codec: type[InputCodec] | None
            if content_type:
                codec = input_codec_for(content_type)
            else:
                codec = find_input_codec(type_hint=hints.get(parameter.name))
            arguments[parameter.name] = codec.decode_input(tensor) if codec else tensor.data
        result = await predict(self, **arguments)
        return encode_result(self.name, self.version, result, return_hint)

    return wrapper


def encode_result(
    model_name: str, model_version: str | None, result: Any, hint: Any = None
) -> InferenceResponse:
    """A response for whatever a simplified `predict` returned."""
    if isinstance(result, InferenceResponse):
        return result
    request_codec = find_request_codec(type_hint=hint) if hint is not None else None
    if request_codec is not None and request_codec.can_encode(result):
        return request_codec.encode_response(model_name, result, model_version)
    if isinstance(result, tuple):
        hints = get_args(hint) if get_origin(hint) is tuple else ()
        values = list(result)
    else:
        hints, values = (hint,), [result]
    outputs = [
        _encode_output(f"output-{index}", value, hints[index] if index < len(hints) else None)
        for index, value in enumerate(values)
    ]
    return InferenceResponse(model_name=model_name, model_version=model_version, outputs=outputs)


def _encode_output(name: str, value: Any, hint: Any) -> ResponseOutput:
    codec = find_input_codec(type_hint=hint) if hint is not None else None
    if codec is None or not codec.can_encode(value):
        codec = find_input_codec(payload=value)
    if codec is None:
        raise CodecError(f"no codec can encode output '{name}' of type {type(value).__name__}")
    return codec.encode_output(name, value)
