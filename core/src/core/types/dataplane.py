"""Pydantic models of the OIP data plane: requests, responses, metadata, errors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .datatypes import Datatype


class Parameters(BaseModel):
    """Free-form parameters. `content_type` picks a codec; `headers` carries
    transport headers to a model (request) and back to the client (response)."""

    model_config = ConfigDict(extra="allow")

    content_type: str | None = None
    headers: dict[str, str] | None = None


# Request parameters that belong to the server (content_type, headers, the
# client's `timeout`) or to Triton's clients (binary_data_*), never to a model.
TRANSPORT_PARAMETERS = frozenset(
    {"content_type", "headers", "timeout", "binary_data_output", "binary_data_size"}
)


def model_parameters(parameters: Parameters | None) -> dict[str, Any]:
    """A request's own parameters, for the model: all but `TRANSPORT_PARAMETERS`
    and those set to null."""
    if parameters is None:
        return {}
    return {
        name: value
        for name, value in parameters.model_dump(exclude_none=True).items()
        if name not in TRANSPORT_PARAMETERS
    }


def parameters_dict(parameters: Parameters) -> dict[str, Any]:
    """`parameters.model_dump(exclude_none=True)`, built directly when there
    are no extra parameters (the common case on every request and response),
    where pydantic's serializer costs more than the rest of the work."""
    if type(parameters) is not Parameters or parameters.__pydantic_extra__:
        return parameters.model_dump(exclude_none=True)
    content: dict[str, Any] = {}
    if parameters.content_type is not None:
        content["content_type"] = parameters.content_type
    if parameters.headers is not None:
        content["headers"] = dict(parameters.headers)
    return content


class _Base(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


class RequestInput(_Base):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: Any = None


class RequestOutput(_Base):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(_Base):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Base):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: Any = None


class InferenceResponse(_Base):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(_Base):
    name: str
    datatype: Datatype
    shape: list[int]
    parameters: Parameters | None = None


class MetadataServerResponse(_Base):
    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


class MetadataModelResponse(_Base):
    name: str
    versions: list[str] = Field(default_factory=list)
    platform: str = ""
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)
    parameters: Parameters | None = None

    @field_validator("versions", "inputs", "outputs", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # Optional in OIP: KServe sends "versions": null.
        return [] if value is None else value


class InferenceErrorResponse(_Base):
    error: str
