"""JSON responses serialised with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import JSONResponse as StarletteJSONResponse

from ..types import InferenceResponse, ResponseOutput
from ..types.dataplane import parameters_dict


def _default(value: Any) -> Any:
    # BYTES tensor elements: JSON carries them as UTF-8 text.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(content: Any) -> bytes:
    if isinstance(content, InferenceResponse):
        content = response_content(content)
    elif isinstance(content, BaseModel):
        content = content.model_dump(exclude_none=True)
    return orjson.dumps(content, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


def response_content(response: InferenceResponse) -> dict[str, Any]:
    """The JSON form of a response, built directly: pydantic's model_dump
    walks every element of every `data` list in Python, which costs more than
    orjson serialising the whole response."""
    content: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        content["model_version"] = response.model_version
    if response.id is not None:
        content["id"] = response.id
    if response.parameters is not None:
        content["parameters"] = parameters_dict(response.parameters)
    content["outputs"] = [_tensor_dict(output) for output in response.outputs]
    return content


def _tensor_dict(tensor: ResponseOutput) -> dict[str, Any]:
    content: dict[str, Any] = {"name": tensor.name, "shape": tensor.shape, "datatype": tensor.datatype}
    if tensor.parameters is not None:
        content["parameters"] = parameters_dict(tensor.parameters)
    content["data"] = tensor.data
    return content


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
