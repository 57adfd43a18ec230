"""The binary tensor extension of the REST API (Triton's `binary_tensor_data`,
what tritonclient sends by default): a JSON header followed by raw tensor
bytes, in requests and responses. The raw layout is `core.types.raw`.

The extension's parameters (`binary_data_size`, `binary_data`,
`binary_data_output`) are framing, not model input: they are taken out of
the request before the model sees it, as Triton does, so a model sees the
same request whichever form the client used (and whichever transport)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import BadRequest, shorten
from ..types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    Parameters,
    RequestInput,
)
from ..types.dataplane import parameters_dict
from ..types.raw import decode_raw, encode_output, itemsize
from .responses import dumps, response_content

INFERENCE_HEADER = "inference-header-content-length"


class BinaryOutputs:
    """Which outputs of a response go as raw bytes: the request-wide
    `binary_data_output` default, overridden per output by `binary_data`."""

    __slots__ = ("default", "overrides")

    def __init__(self, default: bool, overrides: dict[str, bool] | None = None) -> None:
        self.default = default
        self.overrides = overrides or {}

    def __contains__(self, name: str) -> bool:
        return self.overrides.get(name, self.default)


ALL_BINARY = BinaryOutputs(True)


def split_body(body: bytes, declared: str) -> tuple[memoryview, memoryview]:
    """The JSON header and the raw bytes after it, by the declared
    Inference-Header-Content-Length (not 0: see `single_input_request`)."""
    if not declared.isdecimal():  # not isdigit: int() rejects "²"
        raise BadRequest(f"invalid Inference-Header-Content-Length header: {shorten(repr(declared))}")
    length = int(declared)
    if length > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes"
        )
    view = memoryview(body)
    return view[:length], view[length:]


def read_binary_inputs(payload: InferenceRequest, raw: memoryview) -> None:
    """Give each input that has `binary_data_size` its data from `raw`, in
    order of appearance; the sizes must account for every byte of `raw`."""
    binary: list[tuple[RequestInput, int]] = []
    for tensor in payload.inputs:
        size = _pop(tensor, "binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(
                f"input '{shorten(tensor.name)}': binary_data_size must be a non-negative integer, "
                f"got {shorten(repr(size))}"
            )
        if tensor.data is not None:
            raise BadRequest(f"input '{shorten(tensor.name)}' has both data and binary_data_size")
        binary.append((tensor, size))
    total = sum(size for _, size in binary)
    if total != len(raw):
        names = shorten(", ".join(f"'{shorten(tensor.name)}' {size}" for tensor, size in binary) or "none")
        raise BadRequest(
            f"{len(raw)} bytes of binary data follow the JSON header, but the inputs' "
            f"binary_data_size add up to {total} (inputs: {names})"
        )
    offset = 0
    for tensor, size in binary:
        tensor.data = decode_raw(tensor.name, tensor.datatype, tensor.shape, raw[offset : offset + size])
        offset += size


def single_input_request(metadata: MetadataModelResponse, body: bytes) -> InferenceRequest:
    """The request for `Inference-Header-Content-Length: 0`: the body is the
    raw data of the model's one input, whose name, datatype and shape come
    from the model's metadata. One variable dimension is deduced from the
    body size (a batch of 1 for a [-1, 4] input sent 4 elements); BYTES
    variable dimensions are 1, as in Triton."""
    if len(metadata.inputs) != 1:
        raise BadRequest(
            f"Inference-Header-Content-Length 0 (a raw body without JSON) needs model "
            f"'{metadata.name}' to declare exactly one input in its metadata "
            f"(model-settings `inputs`); it declares {len(metadata.inputs)}"
        )
    if not body:
        raise BadRequest(
            "Inference-Header-Content-Length 0 needs the raw input data in the body; it is empty"
        )
    spec = metadata.inputs[0]
    shape = list(spec.shape)
    variable = [index for index, dim in enumerate(shape) if dim < 0]
    size = itemsize(spec.datatype)
    if size is None:
        shape = [1 if dim < 0 else dim for dim in shape]
    elif variable:
        if len(variable) > 1:
            raise BadRequest(
                f"input '{spec.name}' has shape {spec.shape}: with more than one variable "
                f"dimension its shape cannot be deduced from a raw body"
            )
        per_row = math.prod(dim for dim in shape if dim >= 0) * size
        if per_row == 0 or len(body) % per_row:
            raise BadRequest(
                f"input '{spec.name}': a raw body of {len(body)} bytes does not fit shape "
                f"{spec.shape} of {spec.datatype.value}"
            )
        shape[variable[0]] = len(body) // per_row
    data = decode_raw(spec.name, spec.datatype, shape, body)
    return InferenceRequest(
        inputs=[RequestInput(name=spec.name, shape=shape, datatype=spec.datatype, data=data)]
    )


def take_binary_outputs(payload: InferenceRequest) -> BinaryOutputs | None:
    """The outputs asked for as raw bytes, taking the parameters out of the
    request; None when every output goes as JSON (the common, fast case)."""
    default = _pop(payload, "binary_data_output")
    if default is not None and not isinstance(default, bool):
        raise BadRequest(f"parameter binary_data_output must be a boolean, got {shorten(repr(default))}")
    overrides: dict[str, bool] | None = None
    for output in payload.outputs or ():
        value = _pop(output, "binary_data")
        if value is None:
            continue
        if not isinstance(value, bool):
            raise BadRequest(
                f"output '{shorten(output.name)}': binary_data must be a boolean, got {shorten(repr(value))}"
            )
        if overrides is None:
            overrides = {}
        overrides[output.name] = value
    if not default and not (overrides and any(overrides.values())):
        return None
    return BinaryOutputs(bool(default), overrides)


def render_binary(response: InferenceResponse, binary: BinaryOutputs) -> tuple[bytes, int | None]:
    """The response body and the length of its JSON header; the length is
    None when no returned output is binary (the body is then plain JSON)."""
    content = response_content(response)
    chunks: list[bytes] = []
    for output, tensor in zip(response.outputs, content["outputs"], strict=True):
        if output.name not in binary:
            continue
        raw = encode_output(response.model_name, output)
        del tensor["data"]
        parameters: dict[str, Any] = tensor.setdefault("parameters", {})
        parameters["binary_data_size"] = len(raw)
        chunks.append(raw)
    header = dumps(content)
    if not chunks:
        return header, None
    return b"".join((header, *chunks)), len(header)


def _pop(owner: Any, key: str) -> Any:
    """Take an extension parameter out of `owner.parameters` (dropping
    parameters left empty); None when absent."""
    parameters: Parameters | None = owner.parameters
    if parameters is None:
        return None
    extra = parameters.__pydantic_extra__
    if not extra or key not in extra:
        return None
    value = extra.pop(key)
    parameters.__pydantic_fields_set__.discard(key)
    if not parameters_dict(parameters):
        owner.parameters = None
    return value
