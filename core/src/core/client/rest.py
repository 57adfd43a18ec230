"""Open Inference Protocol clients over REST, on httpx: `RESTClient` (sync)
and `AsyncRESTClient`. Every call is described once, in `_RESTCalls`, as
what to send and how to read the answer; the two classes differ only in how
they send it (`_run`, `_stream`)."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import TypeAdapter, ValidationError

from ..types import MetadataModelResponse, MetadataServerResponse, RepositoryIndexResponseItem
from .base import (
    USE_CLIENT_DEFAULT,
    ClientCalls,
    Timeout,
    as_async_iterator,
    call_headers,
    resolve_timeout,
)
from .errors import ClientError, http_error
from .http1 import BlockingConnections, is_direct
from .retry import Failure, RetryPolicy, as_policy, retry_after_seconds
from .types import InferRequest, InferResponse

INFERENCE_HEADER = "inference-header-content-length"
_INDEX = TypeAdapter(list[RepositoryIndexResponseItem])
Parse = Callable[[httpx.Response, str], Any]


class _Call:
    """One HTTP exchange: what to send, whether it is safe to repeat, whether
    a 503 is an answer (a health check) or a reason to retry, and how the
    response becomes the call's result."""

    __slots__ = ("content", "headers", "idempotent", "method", "parse", "path", "retry_503", "timeout")

    def __init__(
        self,
        method: str,
        path: str,
        parse: Parse,
        headers: dict[str, str],
        timeout: Timeout,
        *,
        content: bytes | None = None,
        idempotent: bool = True,
        retry_503: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.parse = parse
        self.headers = headers
        self.timeout = timeout
        self.content = content
        self.idempotent = idempotent
        self.retry_503 = retry_503


class _RESTCalls(ClientCalls):
    """The REST form of each call (ClientCalls), shared by the sync and
    async clients."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        *,
        timeout: Timeout = 60.0,
        retries: int | RetryPolicy | None = 3,
        headers: Mapping[str, str] | None = None,
        binary: bool = True,
    ) -> None:
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry_policy = as_policy(retries)
        self.headers = dict(headers or {})
        self.binary = binary

    def _call(
        self,
        method: str,
        path: str,
        parse: Parse,
        headers: Mapping[str, str] | None,
        timeout: Any,
        request_id: str | None = None,
        **options: Any,
    ) -> _Call:
        return _Call(
            method,
            path,
            parse,
            call_headers(self.headers, headers, request_id),
            resolve_timeout(timeout, self.timeout),
            **options,
        )

    def _describe(
        self, operation: str, headers: Mapping[str, str] | None, timeout: Any, **arguments: Any
    ) -> _Call:
        name: str = arguments.get("model_name") or ""
        version: str | None = arguments.get("model_version")
        match operation:
            case "server_live" | "server_ready":
                path = "/v2/health/" + operation.removeprefix("server_")
                return self._call("GET", path, _succeeded, headers, timeout, retry_503=False)
            case "model_ready":
                path = _model_path(name, version) + "/ready"
                return self._call("GET", path, _succeeded, headers, timeout, retry_503=False)
            case "server_metadata":
                return self._call(
                    "GET", "/v2", _parser(MetadataServerResponse.model_validate_json), headers, timeout
                )
            case "model_metadata":
                parse = _parser(MetadataModelResponse.model_validate_json)
                return self._call("GET", _model_path(name, version), parse, headers, timeout)
            case "infer":
                request: InferRequest = arguments["request"]
                return self._infer_call(request, "/infer", headers, timeout, arguments["idempotent"])
            case "repository_index":
                content = orjson.dumps({"ready": True} if arguments["ready"] else {})
                parse = _parser(_INDEX.validate_json)
                call = self._call("POST", "/v2/repository/index", parse, headers, timeout, content=content)
                call.headers["content-type"] = "application/json"
                return call
            case "load_model" | "unload_model":
                path = f"/v2/repository/models/{quote(name, safe='')}/{operation.removesuffix('_model')}"
                return self._call("POST", path, _no_result, headers, timeout, idempotent=False)
            case "model_config":
                path = _model_path(name, version) + "/config"
                return self._call("GET", path, _parser(orjson.loads), headers, timeout)
            case "model_statistics":
                path = _model_path(name, version) + "/stats" if name else "/v2/models/stats"
                return self._call("GET", path, _parser(orjson.loads), headers, timeout)
        raise ValueError(f"unknown call {operation!r}")

    def _infer_call(
        self,
        request: InferRequest,
        route: str,
        headers: Mapping[str, str] | None,
        timeout: Any,
        idempotent: bool,
    ) -> _Call:
        content, framing = request_body(request)
        path = _model_path(request.model_name, request.model_version) + route
        call = self._call(
            "POST",
            path,
            read_infer_response,
            headers,
            timeout,
            request.id,
            content=content,
            idempotent=idempotent,
        )
        call.headers.update(framing)
        return call

    @property
    def _binary_inputs(self) -> bool:  # type: ignore[override]
        return self.binary

    def _infer_parameters(
        self, inputs: Any, parameters: Mapping[str, Any] | None, binary_output: bool | None
    ) -> Mapping[str, Any] | None:
        binary = self.binary if binary_output is None else binary_output
        if binary and not (parameters and "binary_data_output" in parameters):
            own = inputs.parameters if isinstance(inputs, InferRequest) else None
            if not (own and "binary_data_output" in own):
                # Every output as raw bytes unless a requested output says otherwise.
                return {**(parameters or {}), "binary_data_output": True}
        return parameters

    def _stream_call(self, request: InferRequest, headers: Mapping[str, str] | None, timeout: Any) -> _Call:
        call = self._infer_call(request, "/infer_stream", headers, timeout, idempotent=False)
        call.headers["accept"] = "text/event-stream"
        return call

    # Any other route

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
        idempotent: bool | None = None,
    ) -> Any:
        """Another route of the server (V1, a plugin's own), with the
        client's headers, retries and TLS: the httpx.Response, whatever its
        status. Only GET, HEAD and OPTIONS count as idempotent unless said."""
        if json is not None:
            content = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY)
        safe = method.upper() in ("GET", "HEAD", "OPTIONS") if idempotent is None else idempotent
        call = self._call(method, path, _response, headers, timeout, content=content, idempotent=safe)
        if json is not None:
            call.headers["content-type"] = "application/json"
        return self._run(call)


def tls(verify: Any, cert: Any) -> Any:
    """httpx's `verify` from the client's `verify` and `cert` as KServe's
    RESTConfig takes them (a CA bundle path, True/False, an SSLContext; a
    client certificate path, or (cert, key) or (cert, key, password)), as
    the SSLContext httpx now wants for paths and client certificates."""
    if not isinstance(verify, (str, os.PathLike)) and cert is None:
        return verify
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif isinstance(verify, (str, os.PathLike)):
        folder = os.path.isdir(verify)
        context = ssl.create_default_context(
            capath=verify if folder else None, cafile=None if folder else verify
        )
    else:
        context = ssl.create_default_context()
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(*((cert,) if isinstance(cert, (str, os.PathLike)) else cert))
    return context


def _model_path(model_name: str, model_version: str | None) -> str:
    path = f"/v2/models/{quote(model_name, safe='')}"
    return f"{path}/versions/{quote(model_version, safe='')}" if model_version else path


def request_body(request: InferRequest) -> tuple[bytes, dict[str, str]]:
    """The request body and its content headers: JSON, or the binary tensor
    extension's JSON header and raw tensors."""
    content, json_length = request.to_rest()
    if json_length is None:
        body = (
            content
            if isinstance(content, bytes)
            else orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        )
        return body, {"content-type": "application/json"}
    assert isinstance(content, bytes)
    return content, {"content-type": "application/octet-stream", INFERENCE_HEADER: str(json_length)}


def _check(response: httpx.Response, url: str) -> None:
    if not response.is_success:
        raise http_error(response.status_code, response.content, response.reason_phrase, url)


def _response(response: httpx.Response, url: str) -> httpx.Response:
    return response


def _succeeded(response: httpx.Response, url: str) -> bool:
    return response.is_success


def _no_result(response: httpx.Response, url: str) -> None:
    _check(response, url)


def _parser(read: Callable[[bytes], Any]) -> Parse:
    def parse(response: httpx.Response, url: str) -> Any:
        _check(response, url)
        try:
            return read(response.content)
        except (ValidationError, orjson.JSONDecodeError, ValueError) as error:
            raise ClientError(f"unexpected answer: {error}", status=response.status_code, url=url) from None

    return parse


def read_infer_response(response: httpx.Response, url: str) -> InferResponse:
    _check(response, url)
    length = response.headers.get(INFERENCE_HEADER)
    try:
        if length is not None:
            return InferResponse.from_bytes(response.content, int(length))
        return InferResponse.from_rest(orjson.loads(response.content))
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as error:
        raise ClientError(
            f"malformed inference response: {error}", status=response.status_code, url=url
        ) from None


def _failure(error: httpx.TransportError) -> Failure:
    # Connecting (or waiting for a pooled connection) failed: nothing was sent.
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Failure.CONNECT
    return Failure.LOST


def _transport_error(error: httpx.TransportError, url: str) -> ClientError:
    kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
    return ClientError(f"request {kind}: {type(error).__name__}: {error}", url=url)


def _retry_delay(
    policy: RetryPolicy,
    call: _Call,
    attempt: int,
    response: httpx.Response | None,
    error: httpx.TransportError | None,
) -> float | None:
    """Seconds to wait before trying `call` again, or None not to."""
    if error is not None:
        return (
            policy.delay(attempt) if policy.should_retry(_failure(error), attempt, call.idempotent) else None
        )
    assert response is not None
    if (
        response.status_code == 503
        and call.retry_503
        and policy.should_retry(Failure.REJECTED, attempt, call.idempotent)
    ):
        return policy.delay(attempt, retry_after_seconds(response.headers.get("retry-after")))
    return None


def _events(lines: Iterable[str], url: str) -> Iterator[InferResponse]:
    """The responses of server-sent events; an `{"error"}` event raises."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments, event names
        content = orjson.loads(line[5:].strip())
        if "error" in content and "outputs" not in content:
            raise ClientError(str(content["error"]), url=url)
        yield InferResponse.from_rest(content)


class RESTClient(_RESTCalls):
    """A synchronous OIP client over REST. `url` is the server's base URL
    (http://host:port, or https://... with `verify` and `cert`); `auth` any
    httpx auth; `binary` sends numpy inputs and asks for outputs in the
    binary tensor extension (set False for servers without it, such as
    MLServer)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        *,
        timeout: Timeout = 60.0,
        retries: int | RetryPolicy | None = 3,
        headers: Mapping[str, str] | None = None,
        verify: Any = True,
        cert: Any = None,
        auth: Any = None,
        binary: bool = True,
        http2: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, timeout=timeout, retries=retries, headers=headers, binary=binary)
        self._http = httpx.Client(
            verify=tls(verify, cert), auth=auth, http2=http2, transport=transport, timeout=timeout
        )
        # Plain http:// with nothing for httpx to do: the shorter way (core.client.http1).
        direct = is_direct(self.url) and auth is None and not http2 and transport is None
        self._direct = BlockingConnections(self.url) if direct else None

    def _send(self, call: _Call, *, stream: bool = False) -> httpx.Response:
        url = self.url + call.path
        # The answers of `request()` go to the caller as they are: with httpx's request attached.
        direct = self._direct if not stream and call.parse is not _response else None
        attempt = 0
        while True:
            response = error = None
            try:
                if direct is not None:
                    response = direct.exchange(
                        call.method, call.path, call.headers, call.content, call.timeout
                    )
                else:
                    request = self._http.build_request(
                        call.method, url, content=call.content, headers=call.headers, timeout=call.timeout
                    )
                    response = self._http.send(request, stream=stream)
            except httpx.TransportError as failure:
                error = failure
            delay = _retry_delay(self.retry_policy, call, attempt, response, error)
            if delay is None:
                if error is not None:
                    raise _transport_error(error, url) from None
                assert response is not None
                return response
            if response is not None:
                response.close()
            time.sleep(delay)
            attempt += 1

    def _run(self, call: _Call) -> Any:
        return call.parse(self._send(call), self.url + call.path)

    def infer_stream(
        self,
        model_name: str,
        requests: Iterable[Any],
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> Iterator[InferResponse]:
        """The responses to each request in turn, read as server-sent events
        of `/v2/models/{name}/infer_stream`."""
        for inputs in requests:
            request = self._infer_request(model_name, inputs, None, model_version, None, None, False)
            call = self._stream_call(request, headers, timeout)
            url = self.url + call.path
            response = self._send(call, stream=True)
            try:
                if not response.is_success:
                    response.read()
                    _check(response, url)
                yield from _events(response.iter_lines(), url)
            finally:
                response.close()

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self._http.close()

    def __enter__(self) -> RESTClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRESTClient(_RESTCalls):
    """The asyncio form of RESTClient: the same calls, as coroutines."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        *,
        timeout: Timeout = 60.0,
        retries: int | RetryPolicy | None = 3,
        headers: Mapping[str, str] | None = None,
        verify: Any = True,
        cert: Any = None,
        auth: Any = None,
        binary: bool = True,
        http2: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        super().__init__(url, timeout=timeout, retries=retries, headers=headers, binary=binary)
        self._http = httpx.AsyncClient(
            verify=tls(verify, cert),
            auth=auth,
            http2=http2,
            transport=transport,
            timeout=timeout,
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    async def _send(self, call: _Call, *, stream: bool = False) -> httpx.Response:
        url = self.url + call.path
        attempt = 0
        while True:
            response = error = None
            try:
                request = self._http.build_request(
                    call.method, url, content=call.content, headers=call.headers, timeout=call.timeout
                )
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as failure:
                error = failure
            delay = _retry_delay(self.retry_policy, call, attempt, response, error)
            if delay is None:
                if error is not None:
                    raise _transport_error(error, url) from None
                assert response is not None
                return response
            if response is not None:
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    async def _run(self, call: _Call) -> Any:
        return call.parse(await self._send(call), self.url + call.path)

    async def infer_stream(
        self,
        model_name: str,
        requests: Iterable[Any] | AsyncIterable[Any],
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[InferResponse]:
        """The responses to each request in turn, read as server-sent events."""
        async for inputs in as_async_iterator(requests):
            request = self._infer_request(model_name, inputs, None, model_version, None, None, False)
            call = self._stream_call(request, headers, timeout)
            url = self.url + call.path
            response = await self._send(call, stream=True)
            try:
                if not response.is_success:
                    await response.aread()
                    _check(response, url)
                async for line in response.aiter_lines():
                    for result in _events((line,), url):
                        yield result
            finally:
                await response.aclose()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRESTClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
