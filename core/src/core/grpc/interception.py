"""grpc.aio server interceptors that observe calls (metrics, spans) without
touching the servicer: each method's handler is wrapped once, and the
wrapped handler reused for every call of the method."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc

SERVICE_SEPARATOR = "/"


class CallObserver(Protocol):
    """Observes the calls of one RPC method."""

    def begin(self, context: Any) -> tuple[Any, Any]:
        """A call starts: returns a state for `end`, and the context the
        servicer gets (`context`, or one standing in for it)."""

    def end(self, state: Any, code: grpc.StatusCode) -> None:
        """The call ended with `code`."""


def rpc_type(handler: grpc.RpcMethodHandler) -> str:
    """py-grpc-prometheus's `grpc_type` of a handler."""
    if handler.request_streaming:
        return "BIDI_STREAMING" if handler.response_streaming else "CLIENT_STREAMING"
    return "SERVER_STREAMING" if handler.response_streaming else "UNARY"


def split_method(full_method: str) -> tuple[str, str]:
    """`/package.Service/Method` -> (`package.Service`, `Method`)."""
    service, _, method = full_method.lstrip(SERVICE_SEPARATOR).rpartition(SERVICE_SEPARATOR)
    return service, method


class ObservingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        # method -> (the handler as registered, the one calls go to)
        self._handlers: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def observer(self, method: str, handler: grpc.RpcMethodHandler) -> CallObserver | None:
        """The observer of a method's calls; None leaves the method alone."""
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        known = self._handlers.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        observer = self.observer(method, handler)
        wrapped = handler if observer is None else _observed(handler, observer)
        self._handlers[method] = (handler, wrapped)
        return wrapped


def _observed(handler: grpc.RpcMethodHandler, observer: CallObserver) -> grpc.RpcMethodHandler:
    serialization = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, observer), **serialization)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, observer), **serialization)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, observer), **serialization
        )
    return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream, observer), **serialization)


def _unary(
    behavior: Callable[[Any, Any], Awaitable[Any]], observer: CallObserver
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def observed(request: Any, context: Any) -> Any:
        state, servicer_context = observer.begin(context)
        error: BaseException | None = None
        try:
            return await behavior(request, servicer_context)
        except BaseException as caught:
            error = caught
            raise
        finally:
            observer.end(state, _ending(context, error))

    return observed


def _streaming(behavior: Callable[[Any, Any], Any], observer: CallObserver) -> Callable[[Any, Any], Any]:
    async def observed(request: Any, context: Any) -> AsyncIterator[Any]:
        state, servicer_context = observer.begin(context)
        error: BaseException | None = None
        try:
            responses = behavior(request, servicer_context)
            if hasattr(responses, "__aiter__"):
                async for response in responses:
                    yield response
            else:  # a handler that writes with context.write()
                await responses
        except BaseException as caught:
            error = caught
            raise
        finally:
            observer.end(state, _ending(context, error))

    return observed


def _ending(context: Any, error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: the servicer's (`abort`, `set_code`), or
    what gRPC answers for how the behavior ended."""
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED
    return _status(context) or (grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN)


def _status(context: Any) -> grpc.StatusCode | None:
    """The status the servicer set (`abort`, `set_code`), if any."""
    code = context.code()
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    # Some grpcio versions give the number.
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return None
