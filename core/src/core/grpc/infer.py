"""ModelInfer as bytes in, bytes out.

`infer_message` is the whole unary inference of the gRPC transport apart
from the call itself: it parses a serialized `ModelInferRequest`, runs it
through the data plane and gives back the serialized `ModelInferResponse`
and the response metadata the model set. The servicer calls it with the
bytes grpc.aio received (no deserializer, no serializer in between); a
process handed the same bytes, a worker, can call it the same way."""

from __future__ import annotations

import re
from collections.abc import Mapping

from google.protobuf.message import DecodeError

from ..dataplane import DataPlane
from ..errors import BadRequest, InferenceError
from .converters import request_from_proto, response_to_proto
from .generated import inference_pb2 as pb

Metadata = tuple[tuple[str, str], ...]

# Metadata keys gRPC reserves for itself or that HTTP/2 frames: a model cannot set them.
_RESERVED_METADATA = frozenset({"content-type", "content-length", "te", "user-agent", "connection"})
_METADATA_KEY = re.compile(r"^[0-9a-z_.\-]+$")


async def infer_message(
    dataplane: DataPlane, data: bytes, headers: Mapping[str, str]
) -> tuple[bytes, Metadata]:
    """The serialized response to the serialized request `data`, and the
    initial metadata to send with it (the headers the model set; empty when
    none). `headers` is the request's metadata, as `parameters.headers` for
    the model. Raises CoreError: a malformed message is a BadRequest."""
    try:
        request = pb.ModelInferRequest.FromString(data)
    except DecodeError as error:
        raise BadRequest(f"malformed ModelInferRequest: {error}") from None
    payload = request_from_proto(request)
    name, version = request.model_name, request.model_version or None
    response = await dataplane.infer(payload, name, version, headers)
    reply_headers = response.parameters.headers if response.parameters is not None else None
    message = response_to_proto(response).SerializeToString()
    return message, response_metadata(name, reply_headers) if reply_headers else ()


def infer_target(data: bytes) -> tuple[str, str | None]:
    """The model and version a serialized ModelInferRequest names, without
    parsing its tensors: ModelMetadataRequest has the same two leading fields
    (1: name, 2: version), and keeps the rest as unknown fields."""
    try:
        target = pb.ModelMetadataRequest.FromString(data)
    except DecodeError:
        # Reported as what the client sent, not as the stand-in parsed here:
        # a message ModelMetadataRequest cannot parse, ModelInferRequest cannot either.
        try:
            pb.ModelInferRequest.FromString(data)
        except DecodeError as error:
            raise BadRequest(f"malformed ModelInferRequest: {error}") from None
        raise BadRequest("malformed ModelInferRequest") from None
    return target.name, target.version or None


def response_metadata(model: str, headers: dict[str, str]) -> Metadata:
    """The headers a model set, as initial metadata: lower-case keys, printable
    ASCII values; gRPC's own keys stay the server's."""
    metadata = []
    for key, value in headers.items():
        name, text = key.lower(), str(value)
        if name in _RESERVED_METADATA or name.startswith(("grpc-", ":")):
            continue
        if not _METADATA_KEY.match(name) or name.endswith("-bin"):
            raise InferenceError(f"model '{model}' set response header '{key}' that gRPC cannot carry")
        if not text.isascii() or not text.isprintable():
            raise InferenceError(
                f"model '{model}' set response header '{key}' to a value gRPC cannot carry "
                "(printable ASCII only)"
            )
        metadata.append((name, text))
    return tuple(metadata)
