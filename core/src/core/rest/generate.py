"""Triton's generate extension (the OIP text-generation API): a generate
request as an InferenceRequest, and responses back in the generate shape."""

from __future__ import annotations

from typing import Any

from ..errors import BadRequest
from ..types import InferenceRequest, InferenceResponse, Parameters, RequestInput, to_ndarray
from .body import parse_json

TEXT_INPUT = "text_input"
TEXT_OUTPUT = "text_output"


def generate_request(body: bytes) -> InferenceRequest:
    """`{"id"?, "text_input", "parameters"?, ...}` as a request with one BYTES
    input `text_input` (content type `str`). `parameters` and any other field
    become request parameters, as Triton passes them to the model."""
    content = parse_json(body)
    if not isinstance(content, dict) or not isinstance(content.get(TEXT_INPUT), str):
        raise BadRequest(f"generate request: '{TEXT_INPUT}' (a string) is required")
    request_id = content.pop("id", None)
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("generate request: 'id' must be a string")
    text = content.pop(TEXT_INPUT)
    parameters = content.pop("parameters", None)
    if parameters is None:
        parameters = {}
    elif not isinstance(parameters, dict):
        raise BadRequest("generate request: 'parameters' must be an object")
    parameters = {**content, **parameters}
    text_input = RequestInput(
        name=TEXT_INPUT,
        shape=[1],
        datatype="BYTES",
        data=[text],
        parameters=Parameters(content_type="str"),
    )
    return InferenceRequest(
        id=request_id,
        inputs=[text_input],
        parameters=Parameters(**parameters) if parameters else None,
    )


def generate_response(response: InferenceResponse) -> dict[str, Any]:
    """`{"model_name", "model_version"?, "id"?, <output>: value, ...}`: each
    output by name, one-element outputs as a plain value, BYTES as text."""
    content: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        content["model_version"] = response.model_version
    if response.id is not None:
        content["id"] = response.id
    for output in response.outputs:
        values = [_text(value) for value in to_ndarray(output).ravel().tolist()]
        content[output.name] = values[0] if len(values) == 1 else values
    return content


def merge_generate_responses(responses: list[dict[str, Any]]) -> dict[str, Any]:
    """The one answer of `/generate` to a model that streamed several: the
    last response, with the `text_output` of all of them concatenated."""
    if not responses:
        return {}
    merged = dict(responses[-1])
    parts = [response.get(TEXT_OUTPUT) for response in responses]
    if len(responses) > 1 and all(isinstance(part, str) for part in parts):
        merged[TEXT_OUTPUT] = "".join(part for part in parts if isinstance(part, str))
    return merged


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
