"""Open Inference Protocol clients over gRPC, on grpcio and core's own
stubs: `GRPCClient` (sync) and `AsyncGRPCClient` (grpc.aio). As in
core.client.rest, each call is described once (`_GRPCCalls`) and the two
classes differ only in how they make it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet
from pydantic import ValidationError

from ..grpc.generated import inference_pb2 as pb
from ..grpc.generated.inference_pb2_grpc import GRPCInferenceServiceStub
from ..types import (
    MetadataModelResponse,
    MetadataServerResponse,
    MetadataTensor,
    RepositoryIndexResponseItem,
)
from .base import USE_CLIENT_DEFAULT, ClientCalls, Timeout, as_async_iterator, call_headers, resolve_timeout
from .errors import ClientError, rpc_error
from .retry import Failure, RetryPolicy, as_policy
from .types import InferRequest, InferResponse

Parse = Callable[[Any], Any]

# UNAVAILABLE covers both a connection never made and one lost mid-call;
# only their details tell them apart (grpc core's wording, stable for years).
_CONNECT_DETAILS = ("failed to connect", "connection refused", "dns resolution failed", "name resolution")
_LOST_DETAILS = (
    "socket closed",
    "connection reset",
    "broken pipe",
    "goaway",
    "stream removed",
    "recvmsg",
    "eof",
)


class _Call:
    __slots__ = ("health", "idempotent", "message", "metadata", "method", "parse", "timeout")

    def __init__(
        self,
        method: str,
        message: Any,
        parse: Parse,
        metadata: tuple[tuple[str, str], ...],
        timeout: Timeout,
        *,
        idempotent: bool = True,
        health: bool = False,
    ) -> None:
        self.method = method
        self.message = message
        self.parse = parse
        self.metadata = metadata
        self.timeout = timeout
        self.idempotent = idempotent
        self.health = health


def _target(url: str, ssl: bool) -> tuple[str, bool]:
    """host:port from `url` (grpc://, grpcs:// or bare), and whether to use TLS."""
    for scheme, secure in (("grpcs://", True), ("grpc://", False), ("https://", True), ("http://", False)):
        if url.startswith(scheme):
            url, ssl = url[len(scheme) :], ssl or secure
            break
    url = url.rstrip("/")
    if ":" not in url.rsplit("]", 1)[-1]:
        url += ":443" if ssl else ":80"
    return url, ssl


def _read(path: str | bytes | None) -> bytes | None:
    if path is None or isinstance(path, bytes):
        return path
    with open(path, "rb") as file:
        return file.read()


class _GRPCCalls(ClientCalls):
    """The gRPC form of each call (ClientCalls), shared by the sync and
    async clients."""

    def __init__(
        self,
        url: str = "127.0.0.1:8081",
        *,
        timeout: Timeout = 60.0,
        retries: int | RetryPolicy | None = 3,
        headers: Mapping[str, str] | None = None,
        ssl: bool = False,
        root_certificates: str | bytes | None = None,
        private_key: str | bytes | None = None,
        certificate_chain: str | bytes | None = None,
        creds: grpc.ChannelCredentials | None = None,
        channel_args: Sequence[tuple[str, Any]] | None = None,
    ) -> None:
        self.address, secure = _target(url, ssl)
        self.timeout = timeout
        self.retry_policy = as_policy(retries)
        self.headers = dict(headers or {})
        self._options = (
            list(channel_args)
            if channel_args is not None
            else [
                # Message sizes are the server's to bound, not the client's.
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1),
            ]
        )
        if creds is None and secure:
            creds = grpc.ssl_channel_credentials(
                _read(root_certificates), _read(private_key), _read(certificate_chain)
            )
        self._creds = creds

    def _call(
        self,
        method: str,
        message: Any,
        parse: Parse,
        headers: Mapping[str, str] | None,
        timeout: Any,
        request_id: str | None = None,
        **options: Any,
    ) -> _Call:
        metadata = tuple(call_headers(self.headers, headers, request_id).items())
        return _Call(method, message, parse, metadata, resolve_timeout(timeout, self.timeout), **options)

    def _describe(
        self, operation: str, headers: Mapping[str, str] | None, timeout: Any, **arguments: Any
    ) -> _Call:
        name, version = arguments.get("model_name"), arguments.get("model_version") or ""
        match operation:
            case "server_live":
                return self._call(
                    "ServerLive", pb.ServerLiveRequest(), _field("live"), headers, timeout, health=True
                )
            case "server_ready":
                message = pb.ServerReadyRequest()
                return self._call("ServerReady", message, _field("ready"), headers, timeout, health=True)
            case "model_ready":
                message = pb.ModelReadyRequest(name=name, version=version)
                return self._call("ModelReady", message, _field("ready"), headers, timeout, health=True)
            case "server_metadata":
                return self._call(
                    "ServerMetadata", pb.ServerMetadataRequest(), _server_metadata, headers, timeout
                )
            case "model_metadata":
                message = pb.ModelMetadataRequest(name=name, version=version)
                return self._call("ModelMetadata", message, _model_metadata, headers, timeout)
            case "infer":
                request: InferRequest = arguments["request"]
                return self._call(
                    "ModelInfer",
                    request.to_grpc(),
                    InferResponse.from_grpc,
                    headers,
                    timeout,
                    request.id,
                    idempotent=arguments["idempotent"],
                )
            case "repository_index":
                message = pb.RepositoryIndexRequest(ready=arguments["ready"])
                return self._call("RepositoryIndex", message, _index, headers, timeout)
            case "load_model":
                message = pb.RepositoryModelLoadRequest(model_name=name)
                return self._call(
                    "RepositoryModelLoad", message, _nothing, headers, timeout, idempotent=False
                )
            case "unload_model":
                message = pb.RepositoryModelUnloadRequest(model_name=name)
                return self._call(
                    "RepositoryModelUnload", message, _nothing, headers, timeout, idempotent=False
                )
            case "model_config":
                # The configuration itself, as REST gives it (not wrapped in {"config": ...}).
                message = pb.ModelConfigRequest(name=name, version=version)
                return self._call("ModelConfig", message, _config, headers, timeout)
            case "model_statistics":
                message = pb.ModelStatisticsRequest(name=name or "", version=version)
                return self._call("ModelStatistics", message, _as_dict, headers, timeout)
        raise ValueError(f"unknown call {operation!r}")

    def _retry_delay(self, call: _Call, attempt: int, error: grpc.RpcError) -> float | None:
        failure = _failure(error)
        if failure is None or not self.retry_policy.should_retry(failure, attempt, call.idempotent):
            return None
        return self.retry_policy.delay(attempt)

    def _stream_messages(
        self, model_name: str, model_version: str | None
    ) -> Callable[[Any], pb.ModelInferRequest]:
        def message(inputs: Any) -> pb.ModelInferRequest:
            return self._infer_request(model_name, inputs, model_version=model_version).to_grpc()

        return message


def _failure(error: grpc.RpcError) -> Failure | None:
    code = error.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Failure.LOST  # sent, and the answer came too late: it may have run
    if code != grpc.StatusCode.UNAVAILABLE:
        return None
    details = (error.details() or "").lower()
    if any(text in details for text in _CONNECT_DETAILS):
        return Failure.CONNECT
    if any(text in details for text in _LOST_DETAILS):
        return Failure.LOST
    return Failure.REJECTED  # the server's own UNAVAILABLE: a model not ready, a full queue


def _health_answer(call: _Call, error: grpc.RpcError) -> bool | None:
    """False for a health call the server answered with an error status
    (NOT_FOUND for an unknown model in KServe, UNKNOWN in MLServer,
    UNAVAILABLE from a server up but not ready): judged by status, as over
    REST. None when no answer came (nothing listening, a deadline)."""
    if not call.health:
        return None
    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return False if _failure(error) is Failure.REJECTED else None
    return False


def _parsed(call: _Call, message: Any, address: str) -> Any:
    try:
        return call.parse(message)
    except (ValidationError, ValueError, TypeError, KeyError) as error:
        raise ClientError(
            f"unexpected answer to {call.method}: {error}", status=200, code="OK", url=address
        ) from None


def _field(name: str) -> Parse:
    return lambda message: bool(getattr(message, name))


def _nothing(message: Any) -> None:
    return None


def _as_dict(message: Any) -> dict[str, Any]:
    content: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return content


def _config(message: pb.ModelConfigResponse) -> dict[str, Any]:
    return _as_dict(message.config)


def _tensors(tensors: Any) -> list[MetadataTensor]:
    return [MetadataTensor(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in tensors]


def _server_metadata(message: pb.ServerMetadataResponse) -> MetadataServerResponse:
    return MetadataServerResponse(
        name=message.name, version=message.version, extensions=list(message.extensions)
    )


def _model_metadata(message: pb.ModelMetadataResponse) -> MetadataModelResponse:
    return MetadataModelResponse(
        name=message.name,
        versions=list(message.versions),
        platform=message.platform,
        inputs=_tensors(message.inputs),
        outputs=_tensors(message.outputs),
    )


def _index(message: pb.RepositoryIndexResponse) -> list[RepositoryIndexResponseItem]:
    return [
        RepositoryIndexResponseItem(
            name=m.name, version=m.version or None, state=_state(m.state), reason=m.reason
        )
        for m in message.models
    ]


def _state(text: str) -> str:
    """A model state by its name; MLServer's gRPC index sends Python's
    enum form, "State.READY"."""
    return text.removeprefix("State.") or "UNKNOWN"


STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"


def _stream_message(data: bytes) -> pb.ModelStreamInferResponse:
    """A message of Triton's stream. MLServer sends bare ModelInferResponses
    on it instead: read as the stream message, those either fail to parse
    or leave fields unknown to it (and the model name in error_message)."""
    try:
        message: pb.ModelStreamInferResponse = pb.ModelStreamInferResponse.FromString(data)
    except DecodeError:
        pass
    else:
        if not len(UnknownFieldSet(message)):
            return message
    return pb.ModelStreamInferResponse(infer_response=pb.ModelInferResponse.FromString(data))


def _open_stream(channel: Any) -> Any:
    return channel.stream_stream(
        STREAM_METHOD,
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=_stream_message,
    )


def _stream_response(address: str, message: pb.ModelStreamInferResponse) -> InferResponse:
    if message.error_message:
        raise ClientError(message.error_message, url=address)
    return InferResponse.from_grpc(message.infer_response)


class GRPCClient(_GRPCCalls):
    """A synchronous OIP client over gRPC. `url` is host:port (or grpc://,
    grpcs:// for TLS); TLS takes `ssl`, `root_certificates`, `private_key`
    and `certificate_chain` (paths or PEM bytes) or ready `creds`."""

    def __init__(self, url: str = "127.0.0.1:8081", **options: Any) -> None:
        super().__init__(url, **options)
        if self._creds is not None:
            self._channel = grpc.secure_channel(self.address, self._creds, options=self._options)
        else:
            self._channel = grpc.insecure_channel(self.address, options=self._options)
        self._stub = GRPCInferenceServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def _run(self, call: _Call) -> Any:
        method = getattr(self._stub, call.method)
        attempt = 0
        while True:
            try:
                response = method(call.message, timeout=call.timeout, metadata=call.metadata)
            except grpc.RpcError as error:
                answer = _health_answer(call, error)
                if answer is not None:
                    return answer
                delay = self._retry_delay(call, attempt, error)
                if delay is None:
                    raise rpc_error(error, self.address) from None
                time.sleep(delay)
                attempt += 1
                continue
            return _parsed(call, response, self.address)

    def infer_stream(
        self,
        model_name: str,
        requests: Iterable[Any],
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> Iterator[InferResponse]:
        """Triton's ModelStreamInfer: the requests go on one stream, and
        each response comes back as the model sends it; an error the server
        reports in the stream raises."""
        to_message = self._stream_messages(model_name, model_version)
        metadata = tuple(call_headers(self.headers, headers).items())
        responses = _open_stream(self._channel)(
            (to_message(inputs) for inputs in requests),
            timeout=resolve_timeout(timeout, self.timeout),
            metadata=metadata,
        )
        try:
            for message in responses:
                yield _stream_response(self.address, message)
        except grpc.RpcError as error:
            raise rpc_error(error, self.address) from None
        finally:
            responses.cancel()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GRPCClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncGRPCClient(_GRPCCalls):
    """The grpc.aio form of GRPCClient: the same calls, as coroutines.
    Create it inside the event loop that uses it."""

    def __init__(self, url: str = "127.0.0.1:8081", **options: Any) -> None:
        super().__init__(url, **options)
        if self._creds is not None:
            self._channel = grpc.aio.secure_channel(self.address, self._creds, options=self._options)
        else:
            self._channel = grpc.aio.insecure_channel(self.address, options=self._options)
        self._stub = GRPCInferenceServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def _run(self, call: _Call) -> Any:
        method = getattr(self._stub, call.method)
        attempt = 0
        while True:
            try:
                response = await method(call.message, timeout=call.timeout, metadata=call.metadata)
            except grpc.RpcError as error:
                answer = _health_answer(call, error)
                if answer is not None:
                    return answer
                delay = self._retry_delay(call, attempt, error)
                if delay is None:
                    raise rpc_error(error, self.address) from None
                await asyncio.sleep(delay)
                attempt += 1
                continue
            return _parsed(call, response, self.address)

    async def infer_stream(
        self,
        model_name: str,
        requests: Iterable[Any] | AsyncIterable[Any],
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[InferResponse]:
        to_message = self._stream_messages(model_name, model_version)
        metadata = tuple(call_headers(self.headers, headers).items())

        call = _open_stream(self._channel)(timeout=resolve_timeout(timeout, self.timeout), metadata=metadata)

        async def send() -> None:
            # Written by hand, not from a request iterator: a server that ends
            # the call early (UNIMPLEMENTED) then leaves its own status, not
            # grpc's INTERNAL from a write that raced with the end.
            try:
                async for inputs in as_async_iterator(requests):
                    await call.write(to_message(inputs))
                await call.done_writing()
            except (grpc.RpcError, asyncio.InvalidStateError):
                pass  # the call has ended: reading it says how

        sender = asyncio.ensure_future(send())
        try:
            async for message in call:
                yield _stream_response(self.address, message)
            await sender
        except grpc.RpcError as error:
            raise rpc_error(error, self.address) from None
        finally:
            sender.cancel()
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncGRPCClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
