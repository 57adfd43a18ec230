"""Between the protobuf messages of inference.proto and core's pydantic types,
so the gRPC servicer reuses the protocol-neutral DataPlane as REST does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from google.protobuf import json_format
from pydantic import ValidationError

from ..errors import BadRequest, shorten
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    RepositoryIndexResponse,
    RequestInput,
    RequestOutput,
    to_ndarray,
)
from ..types.dataplane import parameters_dict
from ..types.limits import check_request, element_count
from ..types.raw import decode_raw, encode_output
from .generated import inference_pb2 as pb
from .tensors import decode_contents

_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


# Parameters


def parameters_from_proto(name: str, parameters: Mapping[str, pb.InferParameter]) -> Parameters | None:
    if not parameters:
        return None
    values = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        if choice is not None:  # a parameter with no value set is left out
            values[key] = getattr(value, choice)
    try:
        return Parameters(**values)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise BadRequest(f"{name} parameters: {problems}") from None


def parameters_to_proto(parameters: Parameters | None, target: Any) -> None:
    """Fill a `map<string, InferParameter>` field. `headers` is left out: it
    travels as gRPC metadata."""
    if parameters is None:
        return
    for key, value in parameters_dict(parameters).items():
        if key == "headers":
            continue
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
            slot.int64_param = value
        elif isinstance(value, int) and 0 <= value <= _UINT64_MAX:
            slot.uint64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        elif isinstance(value, str):
            slot.string_param = value
        else:  # lists, objects, ints beyond 64 bits: as JSON text
            slot.string_param = orjson.dumps(value, default=str).decode()


# Inference


def request_from_proto(message: pb.ModelInferRequest) -> InferenceRequest:
    raw = message.raw_input_contents
    tensors = message.inputs
    if raw:
        if any(tensor.HasField("contents") for tensor in tensors):
            raise BadRequest("raw_input_contents and typed contents cannot be mixed in one request")
        if len(raw) != len(tensors):
            raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(tensors)} inputs")
    # Every shape, and the BYTES elements of the request, before any data is decoded.
    check_request(tensors)
    inputs = []
    for index, tensor in enumerate(tensors):
        name = tensor.name
        datatype = _datatype(name, tensor.datatype)
        shape = list(tensor.shape)
        if raw:
            data = decode_raw(name, datatype, shape, raw[index])  # checks the shape first
        else:
            data = decode_contents(name, datatype, tensor.contents, element_count(name, shape))
        request_input = RequestInput(
            name=name,
            shape=shape,
            datatype=datatype,
            parameters=parameters_from_proto(f"input '{shorten(name)}'", tensor.parameters),
            data=data,
        )
        to_ndarray(request_input)  # checks element count and ranges now, cached for the model
        inputs.append(request_input)
    outputs = [
        RequestOutput(
            name=output.name,
            parameters=parameters_from_proto(f"output '{shorten(output.name)}'", output.parameters),
        )
        for output in message.outputs
    ]
    return InferenceRequest(
        id=message.id or None,
        parameters=parameters_from_proto("request", message.parameters),
        inputs=inputs,
        outputs=outputs or None,
    )


_DATATYPES = {datatype.value: datatype for datatype in Datatype}


def _datatype(name: str, value: str) -> Datatype:
    datatype = _DATATYPES.get(value)
    if datatype is None:
        known = ", ".join(_DATATYPES)
        raise BadRequest(f"tensor '{shorten(name)}': unknown datatype '{shorten(value)}' (one of {known})")
    return datatype


def response_to_proto(response: InferenceResponse) -> pb.ModelInferResponse:
    """The response with every output in `raw_output_contents`, the form
    tritonclient reads (it ignores typed contents)."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
    )
    parameters_to_proto(response.parameters, message.parameters)
    tensors, raw = message.outputs, message.raw_output_contents
    for output in response.outputs:
        raw.append(encode_output(response.model_name, output))
        tensor = tensors.add(name=output.name, datatype=output.datatype.value, shape=output.shape)
        parameters_to_proto(output.parameters, tensor.parameters)
    return message


# Metadata and repository


def _tensors_to_proto(tensors: list[MetadataTensor], target: Any) -> None:
    for tensor in tensors:
        target.add(name=tensor.name, datatype=tensor.datatype.value, shape=tensor.shape)


def model_metadata_to_proto(metadata: MetadataModelResponse) -> pb.ModelMetadataResponse:
    message = pb.ModelMetadataResponse(
        name=metadata.name, versions=metadata.versions, platform=metadata.platform
    )
    _tensors_to_proto(metadata.inputs, message.inputs)
    _tensors_to_proto(metadata.outputs, message.outputs)
    return message


def repository_index_to_proto(index: RepositoryIndexResponse) -> pb.RepositoryIndexResponse:
    message = pb.RepositoryIndexResponse()
    for item in index.root:
        message.models.add(
            name=item.name, version=item.version or "", state=item.state.value, reason=item.reason
        )
    return message


# Triton's extensions: the dataplane gives their JSON form, whose field names
# and enum names are the proto's, so the message is parsed from it.


def model_config_to_proto(config: dict[str, Any]) -> pb.ModelConfigResponse:
    return pb.ModelConfigResponse(config=json_format.ParseDict(config, pb.ModelConfig()))


def model_statistics_to_proto(stats: list[dict[str, Any]]) -> pb.ModelStatisticsResponse:
    message = pb.ModelStatisticsResponse()
    json_format.ParseDict({"model_stats": stats}, message)
    return message
