"""The one exception every `core.client` call raises: the server's answer
(its status and `{"error"}` message) or the reason there was none."""

from __future__ import annotations

from typing import Any

import orjson

# gRPC status codes as their usual HTTP equivalents (as grpc-gateway maps
# them), so code that handles one transport's errors handles the other's.
HTTP_STATUS_OF_GRPC_CODE = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ClientError(Exception):
    """A call that failed. `status` is the HTTP status (for gRPC, the HTTP
    equivalent of `code`); None when no answer came (connection refused,
    timeout). `code` is the gRPC status code name, None over REST. `message`
    is the server's error text when it sent one."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.url = url

    def __str__(self) -> str:
        what = self.code or (str(self.status) if self.status is not None else None)
        text = f"{what}: {self.message}" if what else self.message
        return f"{text} ({self.url})" if self.url else text

    def __repr__(self) -> str:
        return f"ClientError({self.message!r}, status={self.status}, code={self.code}, url={self.url!r})"


def http_error(status: int, content: bytes, reason: str, url: str) -> ClientError:
    """The error of a non-2xx HTTP answer: its `{"error": ...}` message when
    the body is one (OIP servers, KServe, MLServer, Triton all send it), else
    the body's text, else the reason phrase."""
    message = ""
    if content:
        try:
            body: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            message = content[:1000].decode("utf-8", "replace").strip()
        else:
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                message = body["error"]
            elif isinstance(body, dict) and isinstance(body.get("detail"), str):  # FastAPI's own errors
                message = body["detail"]
            else:
                message = content[:1000].decode("utf-8", "replace")
    return ClientError(message or reason or f"HTTP {status}", status=status, url=url)


def rpc_error(error: Any, address: str) -> ClientError:
    """The error of a failed gRPC call (a grpc.RpcError, sync or aio)."""
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    return ClientError(
        error.details() or name, status=HTTP_STATUS_OF_GRPC_CODE.get(name, 500), code=name, url=address
    )
