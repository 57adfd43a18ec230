"""MLflow's error answer, `{"error_code": "...", "message": "..."}`, with
the HTTP status MLflow gives the code; core's errors keep their status."""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import Response

from core.errors import CoreError
from core.rest.responses import JSONResponse

logger = logging.getLogger(__name__)

# The name of the closest code of MLflow's `ErrorCode` (databricks.proto) for each status.
_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    415: "BAD_REQUEST",
    429: "REQUEST_LIMIT_EXCEEDED",
    431: "RESOURCE_EXHAUSTED",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_code(status: int) -> str:
    return _ERROR_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")


class MLflowError(Exception):
    """An answer in MLflow's error shape, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error_code": error_code(self.status), "message": self.message}

    def response(self) -> Response:
        response: Response = JSONResponse(self.body(), status_code=self.status)
        return response

    @classmethod
    def of(cls, error: Exception) -> MLflowError:
        """The answer to any error of a route: what the client got wrong, as
        core or the model named it; the server's own failures without their
        details (paths, framework messages), which stay in the server log."""
        if isinstance(error, MLflowError):
            return error
        if not isinstance(error, CoreError):
            logger.error("unhandled error in an MLflow scoring route", exc_info=error)
            return cls(500, "internal server error")
        if error.status_code == 500:
            logger.warning("MLflow scoring route answered 500: %s", error.message)
            return cls(500, "the model failed to answer; the server log has the details")
        return cls(error.status_code, error.message)
