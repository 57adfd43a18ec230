"""The one exception hierarchy of core. Each error knows its HTTP status and
gRPC status code name, so every transport reports it the same way."""

from __future__ import annotations

# How much of a client-supplied value (a name, a shape) an error message
# echoes: a 100 KB model name must not make a 100 KB error (gRPC sends
# messages in trailers, whose size is limited).
ECHO_LIMIT = 200


def shorten(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as text for an error message, cut to `limit` characters + "…"."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


class CoreError(Exception):
    status_code: int = 500
    grpc_code: str = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(CoreError):
    status_code = 400
    grpc_code = "INVALID_ARGUMENT"


class ModelNotFound(CoreError):
    status_code = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, name: str, version: str | None = None) -> None:
        what = f"model '{shorten(name)}'"
        if version is not None:
            what += f" version '{shorten(version)}'"
        super().__init__(f"{what} not found")


class ModelNotReady(CoreError):
    status_code = 503
    grpc_code = "UNAVAILABLE"


class DeadlineExceeded(CoreError):
    """A call into a model (or its load) passed its deadline: the model's
    `timeout`, the server's `model_timeout`, or the client's own."""

    status_code = 504
    grpc_code = "DEADLINE_EXCEEDED"


class BatchQueueFull(CoreError):
    """A batched model's queue holds as many requests as it may: answered at
    once rather than left waiting behind the others."""

    status_code = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, model: str, size: int) -> None:
        super().__init__(
            f"model '{model}' is overloaded: its batch queue is full ({size} requests waiting); retry later"
        )


class PayloadTooLarge(CoreError):
    status_code = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class UnsupportedMediaType(CoreError):
    """A request body in an encoding the server cannot decode."""

    status_code = 415
    grpc_code = "INVALID_ARGUMENT"


class NotImplementedByModel(CoreError):
    status_code = 501
    grpc_code = "UNIMPLEMENTED"


class InferenceError(CoreError):
    """An exception raised inside a model while it served a request."""

    status_code = 500
    grpc_code = "INTERNAL"

    @classmethod
    def raised_by(cls, model: str, error: BaseException) -> InferenceError:
        """The answer to a request whose model raised `error` (not a CoreError)."""
        return cls(f"model '{model}' failed: {type(error).__name__}: {error}")


class BadGateway(CoreError):
    """A server called on a request's behalf (a transformer's predictor)
    gave no usable answer: unreachable, too slow, or failing itself."""

    status_code = 502
    grpc_code = "UNAVAILABLE"


class UpstreamError(CoreError):
    """A server called on a request's behalf (a transformer's predictor)
    refused the request: its answer, passed on with its own status."""

    def __init__(self, message: str, status_code: int, grpc_code: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.grpc_code = grpc_code


class ModelLoadError(CoreError):
    status_code = 500
    grpc_code = "INTERNAL"


class ConfigurationError(CoreError):
    """A settings file or variable that cannot be used; names the source and field."""

    status_code = 400
    grpc_code = "INVALID_ARGUMENT"


class PortUnavailable(CoreError):
    """A port the server must listen on cannot be bound (in use, or not an
    address of this host): the server does not start."""


class CodecError(BadRequest):
    """A payload that a codec cannot decode or encode."""


class RequestTimeout(CoreError):
    """A client that stopped sending a request (its body) for longer than
    the server waits."""

    status_code = 408
    grpc_code = "DEADLINE_EXCEEDED"


class HeadersTooLarge(CoreError):
    """A request line and headers over the size or count limit."""

    status_code = 431
    grpc_code = "RESOURCE_EXHAUSTED"


class TooManyConnections(CoreError):
    """A connection over the server's connection limit: refused at once."""

    status_code = 503
    grpc_code = "UNAVAILABLE"
