"""`inference.GRPCInferenceService` over the DataPlane: the OIP core RPCs, and
the model-repository, model-configuration and statistics RPCs with Triton's
message layout."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from ..dataplane import DataPlane
from ..deadlines import set_client_timeout
from ..errors import CoreError, shorten
from ..memory import release_after
from ..remote import RemoteModel
from . import converters
from .generated import inference_pb2 as pb
from .infer import infer_message, infer_target

logger = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"
# Triton's request parameter asking for an empty response that marks the end
# of each request's responses in ModelStreamInfer, and the response parameter.
ENABLE_FINAL_RESPONSE = "triton_enable_empty_final_response"
FINAL_RESPONSE = "triton_final_response"

Response = TypeVar("Response")

# The longest status message sent: it travels in the trailers, whose size
# clients limit (8 KiB by default); past it a client sees RESOURCE_EXHAUSTED
# "Stream removed" instead of the error.
MAX_STATUS_MESSAGE = 1000


class InferenceServicer:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    # Health and metadata. Live/ready answer false rather than fail.

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        async def ready() -> pb.ModelReadyResponse:
            return pb.ModelReadyResponse(
                ready=self.dataplane.model_ready(request.name, request.version or None)
            )

        return await _guarded(context, ready())

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        metadata = self.dataplane.metadata()
        return pb.ServerMetadataResponse(
            name=metadata.name, version=metadata.version, extensions=metadata.extensions
        )

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        async def metadata() -> pb.ModelMetadataResponse:
            found = await self.dataplane.model_metadata(request.name, request.version or None)
            return converters.model_metadata_to_proto(found)

        return await _guarded(context, metadata())

    # Inference

    async def ModelInfer(self, data: bytes, context: Any) -> bytes:
        """Takes and returns the serialized messages: a model held by a worker
        gets the request bytes as they came and answers with response bytes."""

        async def infer() -> bytes:
            headers = request_headers(context)
            message, metadata = await self._infer(data, headers)
            if metadata:
                await context.send_initial_metadata(metadata)
            return message

        try:
            return await _guarded(context, infer())
        finally:
            release_after(len(data))

    async def _infer(self, data: bytes, headers: dict[str, str]) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        # Reading the target first costs a second parse: only worth it once
        # some model has remote replicas.
        if self.dataplane.registry.hosts_remote:
            model = self.dataplane.model(*infer_target(data))
            if isinstance(model, RemoteModel):
                return await model.infer_grpc(headers, data)
        return await infer_message(self.dataplane, data, headers)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Triton's streaming RPC. The requests (raw bytes, parsed here) are
        served one after the other, each with the model's predict_stream: one
        message per response. A request's error is sent in-band in
        `error_message`, and the stream goes on with the next request. A
        request with Triton's `triton_enable_empty_final_response` gets
        `triton_final_response` false on each response, then an empty response
        with it true once the model's stream has ended."""
        set_client_timeout(context.time_remaining())
        headers = request_headers(context)
        async for data in requests:
            release_after(len(data))
            try:
                request = pb.ModelInferRequest.FromString(data)
                payload = converters.request_from_proto(request)
                name, version = request.model_name, request.model_version or None
                marked = _wants_final_response(request)
                last = None
                async for response in self.dataplane.infer_stream(payload, name, version, headers):
                    last = message = converters.response_to_proto(response)
                    if marked:
                        message.parameters[FINAL_RESPONSE].bool_param = False
                    yield pb.ModelStreamInferResponse(infer_response=message)
                if marked:
                    yield pb.ModelStreamInferResponse(infer_response=_final_response(request, last))
            except DecodeError as error:
                yield pb.ModelStreamInferResponse(error_message=f"malformed ModelInferRequest: {error}")
            except CoreError as error:
                yield pb.ModelStreamInferResponse(error_message=shorten(error.message, MAX_STATUS_MESSAGE))
            except Exception:
                logger.exception("unhandled error in a gRPC stream")
                yield pb.ModelStreamInferResponse(error_message="internal server error")

    # Model repository

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        async def index() -> pb.RepositoryIndexResponse:
            # proto3 cannot tell false from unset: false lists every model, as in Triton.
            found = self.dataplane.repository_index(True if request.ready else None)
            return converters.repository_index_to_proto(found)

        return await _guarded(context, index())

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        if request.parameters:
            await abort(
                context,
                grpc.StatusCode.UNIMPLEMENTED,
                "load parameters (configuration and file overrides) are not supported",
            )

        async def load() -> pb.RepositoryModelLoadResponse:
            await self.dataplane.repository_load(request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await _guarded(context, load())

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        async def unload() -> pb.RepositoryModelUnloadResponse:
            await self.dataplane.repository_unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await _guarded(context, unload())

    # Model configuration and statistics

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        async def config() -> pb.ModelConfigResponse:
            found = await self.dataplane.model_config(request.name, request.version or None)
            return converters.model_config_to_proto(found)

        return await _guarded(context, config())

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        async def statistics() -> pb.ModelStatisticsResponse:
            found = await self.dataplane.model_statistics(request.name or None, request.version or None)
            return converters.model_statistics_to_proto(found)

        return await _guarded(context, statistics())


async def _guarded(context: Any, call: Awaitable[Response]) -> Response:
    """`call`'s result; a CoreError becomes its gRPC status and message, any
    other exception INTERNAL with a generic message (the details go to the log).
    The client's deadline bounds the calls into models."""
    set_client_timeout(context.time_remaining())
    try:
        return await call
    except CoreError as error:
        await abort(context, getattr(grpc.StatusCode, error.grpc_code), error.message)
    except Exception:
        logger.exception("unhandled error in a gRPC call")
        await abort(context, grpc.StatusCode.INTERNAL, "internal server error")
    raise AssertionError("context.abort returned")  # it raises; this tells mypy so


async def abort(context: Any, code: grpc.StatusCode, message: str) -> None:
    """End the call with `code` and `message`, cut to MAX_STATUS_MESSAGE
    characters: every error status of the service goes through here."""
    await context.abort(code, shorten(message, MAX_STATUS_MESSAGE))


def request_headers(context: Any) -> dict[str, str]:
    """Invocation metadata as `parameters.headers`. Binary (`-bin`) entries are
    left out: headers are text."""
    return {
        key.lower(): value
        for key, value in context.invocation_metadata() or ()
        if isinstance(value, str) and not key.endswith("-bin")
    }


# A unary method as served: (request bytes, context) -> its answer, and the
# serializer of that answer (None: the answer is bytes already).
UnaryMethod = tuple[Callable[[bytes, Any], Awaitable[Any]], Callable[[Any], bytes] | None]


def unary_methods(servicer: InferenceServicer) -> dict[str, UnaryMethod]:
    """The service's unary methods by name, each taking the request bytes
    (a proxy in front of the service, such as Ray Serve's, passes them on)."""
    parsed: dict[str, tuple[Callable[..., Awaitable[Any]], Any]] = {
        "ServerLive": (servicer.ServerLive, pb.ServerLiveRequest),
        "ServerReady": (servicer.ServerReady, pb.ServerReadyRequest),
        "ModelReady": (servicer.ModelReady, pb.ModelReadyRequest),
        "ServerMetadata": (servicer.ServerMetadata, pb.ServerMetadataRequest),
        "ModelMetadata": (servicer.ModelMetadata, pb.ModelMetadataRequest),
        "RepositoryIndex": (servicer.RepositoryIndex, pb.RepositoryIndexRequest),
        "RepositoryModelLoad": (servicer.RepositoryModelLoad, pb.RepositoryModelLoadRequest),
        "RepositoryModelUnload": (servicer.RepositoryModelUnload, pb.RepositoryModelUnloadRequest),
        "ModelConfig": (servicer.ModelConfig, pb.ModelConfigRequest),
        "ModelStatistics": (servicer.ModelStatistics, pb.ModelStatisticsRequest),
    }
    methods: dict[str, UnaryMethod] = {
        name: (_parsing(function, message_type), _serialize)
        for name, (function, message_type) in parsed.items()
    }
    # Bytes in, bytes out.
    methods["ModelInfer"] = (servicer.ModelInfer, None)
    return methods


def method_handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The service's handlers, registered by hand rather than through the
    generated *_pb2_grpc module (untyped), with the same method paths."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(function, response_serializer=serializer)
        for name, (function, serializer) in unary_methods(servicer).items()
    }
    handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
        servicer.ModelStreamInfer, response_serializer=_serialize
    )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _parsing(
    function: Callable[..., Awaitable[Any]], message_type: Any
) -> Callable[[bytes, Any], Awaitable[Any]]:
    """`function` taking the request bytes: parsed here rather than by a gRPC
    deserializer, whose failure clients would see as UNKNOWN, not INVALID_ARGUMENT."""

    async def handler(data: bytes, context: Any) -> Any:
        try:
            request = message_type.FromString(data)
        except DecodeError as error:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed {message_type.DESCRIPTOR.name}: {error}",
            )
        return await function(request, context)

    return handler


def _wants_final_response(request: pb.ModelInferRequest) -> bool:
    parameter = request.parameters.get(ENABLE_FINAL_RESPONSE)
    return parameter is not None and parameter.bool_param


def _final_response(
    request: pb.ModelInferRequest, last: pb.ModelInferResponse | None
) -> pb.ModelInferResponse:
    """The empty response that ends a request's responses, with their model
    and id (or the request's, when the model sent none)."""
    named = last if last is not None else request
    message = pb.ModelInferResponse(
        model_name=named.model_name, model_version=named.model_version, id=named.id
    )
    message.parameters[FINAL_RESPONSE].bool_param = True
    return message
