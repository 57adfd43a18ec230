"""Every error leaves the REST server as `{"error": "..."}` with the status of
its `core.errors` class; nothing else (no stack trace) reaches the client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from ..errors import CoreError
from ..settings import describe_validation_error
from .responses import JSONResponse

logger = logging.getLogger(__name__)


def error_response(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def describe_request_error(error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    if problems and problems[0]["type"] == "json_invalid":
        return f"malformed JSON: {problems[0]['ctx'].get('error', 'invalid JSON')}"
    return f"invalid request: {describe_validation_error(error)}"


async def _core_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, CoreError)
    return error_response(error.status_code, error.message)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, ValidationError):
        return error_response(400, describe_request_error(error))
    assert isinstance(error, RequestValidationError)
    problems = "; ".join(
        f"field '{'.'.join(str(p) for p in item['loc'])}': {item['msg']}" for item in error.errors()
    )
    return error_response(400, f"invalid request: {problems}")


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    response = error_response(error.status_code, str(error.detail))
    if error.headers:
        response.headers.update(error.headers)
    return response


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CoreError, _core_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
